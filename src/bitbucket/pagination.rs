//! Lazy streams over Bitbucket's paginated listings.
//!
//! The first page is requested with `pagelen=100` and a `fields=` list that keeps `next`,
//! `size` and what the connector stores; after that the stream follows each page's `next` link
//! exactly as given (Bitbucket makes some of them opaque cursors), refusing one that points to
//! another host or loops. Pages may be shorter than asked; only a missing `next` ends a
//! listing. A listing that cannot be read to its end is an error, never a shorter list: a body
//! that is cut short or not JSON, a page without `values`, or a total that disagrees with the
//! `size` Bitbucket announced all end the stream with an [`ErrorKind::Incomplete`] error.
//!
//! # Bounds against a server that never stops
//! Every page is a request through the budget, so `--max-requests` bounds a listing like any
//! other request. Beyond that a listing fails with [`ErrorKind::Incomplete`] when its `next`
//! link names a page already read (the message names the page), when it returns more items
//! than its `size` announced, and when it passes its page limit: `ceil(size / pagelen)` plus
//! [`PAGE_SLACK`] when the listing reports its `size`, [`MAX_PAGES`] when it does not.

use super::client::{BitbucketClient, Call};
use super::error::{ApiError, ErrorKind};
use futures::stream::{self, BoxStream, Stream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};
use url::Url;

/// The page length the client asks for (Bitbucket's maximum).
pub const PAGELEN: u32 = 100;

/// Pages a listing may take beyond what its `size` and `pagelen` imply.
pub const PAGE_SLACK: u64 = 3;

/// Pages a listing without `size` may take: far beyond any real workspace (a million items).
pub const MAX_PAGES: u64 = 10_000;

/// A lazy stream of the items of a paginated listing.
pub struct Paged<T> {
    inner: BoxStream<'static, Result<T, ApiError>>,
}

impl<T> Stream for Paged<T> {
    type Item = Result<T, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl<T: Send + 'static> Paged<T> {
    /// Reads every page; fails if any page fails, so the result is always complete.
    pub async fn collect_all(self) -> Result<Vec<T>, ApiError> {
        self.try_collect().await
    }

    /// A stream that yields only `error`, for a listing whose first request could not be built.
    pub(crate) fn from_error(error: ApiError) -> Self {
        Paged {
            inner: stream::once(async move { Err(error) }).boxed(),
        }
    }
}

impl<T> std::fmt::Debug for Paged<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Paged { .. }")
    }
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    values: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    pagelen: Option<u64>,
}

struct Cursor {
    client: BitbucketClient,
    endpoint: &'static str,
    next: Option<Url>,
    seen: HashSet<String>,
    collected: u64,
    size: Option<u64>,
    pagelen: Option<u64>,
    pages: u64,
}

impl Cursor {
    /// The most pages this listing may take, from what it has said about itself so far.
    fn page_limit(&self) -> u64 {
        match self.size {
            Some(size) => {
                let pagelen = self.pagelen.unwrap_or(u64::from(PAGELEN)).max(1);
                size.div_ceil(pagelen)
                    .saturating_add(PAGE_SLACK)
                    .min(MAX_PAGES)
            }
            None => MAX_PAGES,
        }
    }
}

/// Adds `pagelen` and `fields` to the first page's URL.
pub(crate) fn first_page(mut url: Url, fields: Option<&str>) -> Url {
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("pagelen", &PAGELEN.to_string());
        if let Some(fields) = fields {
            // `pagelen` is kept so the page limit knows the length the server really uses.
            if fields.split(',').any(|f| f == "pagelen") {
                query.append_pair("fields", fields);
            } else {
                query.append_pair("fields", &format!("{fields},pagelen"));
            }
        }
    }
    url
}

/// Streams the items of the listing whose first page is `first` (already carrying its query).
pub(crate) fn paginate<T>(client: BitbucketClient, endpoint: &'static str, first: Url) -> Paged<T>
where
    T: DeserializeOwned + Send + 'static,
{
    let cursor = Cursor {
        client,
        endpoint,
        next: Some(first),
        seen: HashSet::new(),
        collected: 0,
        size: None,
        pagelen: None,
        pages: 0,
    };
    let pages = stream::try_unfold(cursor, |mut cursor| async move {
        let Some(url) = cursor.next.take() else {
            return Ok(None);
        };
        let items = next_page::<T>(&mut cursor, url).await?;
        Ok(Some((stream::iter(items.into_iter().map(Ok)), cursor)))
    });
    Paged {
        inner: pages.try_flatten().boxed(),
    }
}

async fn next_page<T: DeserializeOwned>(cursor: &mut Cursor, url: Url) -> Result<Vec<T>, ApiError> {
    let endpoint = cursor.endpoint;
    let incomplete = |client: &BitbucketClient, message: String| {
        client.local_error(ErrorKind::Incomplete, endpoint, message)
    };
    cursor.seen.insert(url.as_str().to_owned());
    cursor.pages += 1;
    let answer = cursor
        .client
        .send(Call {
            method: Method::GET,
            endpoint,
            url: url.clone(),
            body: None,
        })
        .await?;
    let page: RawPage = serde_json::from_slice(&answer.body).map_err(|e| {
        incomplete(
            &cursor.client,
            format!("a page of the listing was cut short or is not JSON ({e})"),
        )
    })?;
    let Some(values) = page.values else {
        return Err(incomplete(
            &cursor.client,
            "a page of the listing has no `values`".to_owned(),
        ));
    };
    let mut items = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let item = T::deserialize(value).map_err(|e| {
            cursor.client.local_error(
                ErrorKind::Decode,
                endpoint,
                format!(
                    "could not read values[{index}] of page {}: {e}",
                    cursor.pages
                ),
            )
        })?;
        items.push(item);
    }
    cursor.collected += items.len() as u64;
    if page.size.is_some() {
        cursor.size = page.size;
    }
    if page.pagelen.is_some_and(|n| n > 0) {
        cursor.pagelen = page.pagelen;
    }
    if let Some(size) = cursor.size.filter(|size| cursor.collected > *size) {
        return Err(incomplete(
            &cursor.client,
            format!(
                "the listing announced {size} items but returned {} by page {}",
                cursor.collected, cursor.pages
            ),
        ));
    }
    match page.next.as_deref().filter(|n| !n.is_empty()) {
        Some(next) => {
            let next = url.join(next).map_err(|_| {
                incomplete(
                    &cursor.client,
                    "the listing's `next` link is not a valid URL".to_owned(),
                )
            })?;
            if !cursor.client.same_origin(&next) {
                return Err(incomplete(
                    &cursor.client,
                    format!(
                        "refusing to follow the listing's `next` link to another host ({})",
                        next.host_str().unwrap_or("none")
                    ),
                ));
            }
            if cursor.seen.contains(next.as_str()) {
                return Err(incomplete(
                    &cursor.client,
                    format!(
                        "the `next` link of page {} repeats a page already read ({}{})",
                        cursor.pages,
                        next.path(),
                        next.query().map(|q| format!("?{q}")).unwrap_or_default()
                    ),
                ));
            }
            let limit = cursor.page_limit();
            if cursor.pages >= limit {
                return Err(incomplete(
                    &cursor.client,
                    format!(
                        "the listing still had a `next` link after {} pages, more than the {} \
                         its size allows ({})",
                        cursor.pages,
                        limit,
                        match cursor.size {
                            Some(size) => format!("{size} items"),
                            None => "no size reported".to_owned(),
                        }
                    ),
                ));
            }
            cursor.next = Some(next);
        }
        None => {
            if let Some(size) = cursor.size {
                if size != cursor.collected {
                    return Err(incomplete(
                        &cursor.client,
                        format!(
                            "the listing announced {size} items but {} were returned",
                            cursor.collected
                        ),
                    ));
                }
            }
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(size: Option<u64>, pagelen: Option<u64>) -> Cursor {
        let settings = super::super::ClientSettings::new(
            Url::parse("https://api.bitbucket.org").expect("url"),
            super::super::Auth::AccessToken(secrecy::SecretString::from("t".to_owned())),
        );
        Cursor {
            client: BitbucketClient::new(settings).expect("client"),
            endpoint: "/x",
            next: None,
            seen: HashSet::new(),
            collected: 0,
            size,
            pagelen,
            pages: 0,
        }
    }

    #[test]
    fn the_page_limit_follows_size_and_pagelen() {
        assert_eq!(cursor(Some(556), None).page_limit(), 6 + PAGE_SLACK);
        assert_eq!(cursor(Some(556), Some(10)).page_limit(), 56 + PAGE_SLACK);
        assert_eq!(cursor(Some(0), None).page_limit(), PAGE_SLACK);
        assert_eq!(cursor(None, Some(10)).page_limit(), MAX_PAGES);
        assert_eq!(cursor(Some(u64::MAX), Some(1)).page_limit(), MAX_PAGES);
    }
}
