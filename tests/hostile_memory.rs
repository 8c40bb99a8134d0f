//! A server that sends a 50 MB body: the client stops reading at its limit and refuses the
//! answer with an error naming the endpoint and the limit, and memory stays bounded. This is
//! the only test of its binary, so the process's peak memory is this case's alone.

mod http_support;

use bitbucket_access::bitbucket::{Auth, BitbucketClient, ClientSettings, ErrorKind};
use bitbucket_access::http::{Limits, RetryPolicy};
use http_support::{peak_rss_kib, Reply, Server};
use secrecy::SecretString;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_50_mb_body_is_refused_with_bounded_memory() {
    let server = Server::start(|_, _| Reply::Large {
        bytes: 50 * 1024 * 1024,
    })
    .await;
    let settings = ClientSettings::new(
        server.url.parse().expect("url"),
        Auth::ApiToken {
            email: "svc@acme.com".into(),
            token: SecretString::from("memory-test-token".to_owned()),
        },
    );
    let client = BitbucketClient::builder(settings)
        .retry_policy(RetryPolicy::immediate(1))
        .limits(Limits {
            attempt_timeout: Some(Duration::from_secs(10)),
            ..Limits::default()
        })
        .build()
        .expect("client");
    let before = peak_rss_kib();
    let start = Instant::now();
    let err = client.user().await.expect_err("too large");
    let took = start.elapsed();
    let after = peak_rss_kib();
    eprintln!("hostile case 50 MB body ended after {took:?}");
    assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
    assert!(err.message.contains("16 MiB"), "{err}");
    assert!(err.to_string().contains("/user"), "{err}");
    let (Some(before), Some(after)) = (before, after) else {
        panic!("/proc/self/status has no VmHWM line to measure peak memory with");
    };
    let grown = after.saturating_sub(before) / 1024;
    eprintln!("peak memory grew by {grown} MiB while refusing the 50 MB body");
    // The 16 MiB limit and its buffer, far below the 50 MB a whole read would take.
    assert!(grown < 40, "peak memory grew by {grown} MiB");
}
