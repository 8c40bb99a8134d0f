//! Lazy streams over Bitbucket's paginated listings.
//!
//! The first page is requested with `pagelen=100` and a `fields=` list that keeps `next`,
//! `size` and what the connector stores; after that the stream follows each page's `next` link
//! exactly as given (Bitbucket makes some of them opaque cursors), refusing one that points to
//! another host or loops. Pages may be shorter than asked. A listing that cannot be read to its
//! end is an error, never a shorter list: a body that is cut short or not JSON, a page without
//! `values`, or a total that disagrees with the `size` Bitbucket announced all end the stream
//! with an [`ErrorKind::Incomplete`] error.

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
}

struct Cursor {
    client: BitbucketClient,
    endpoint: &'static str,
    next: Option<Url>,
    seen: HashSet<String>,
    collected: u64,
    size: Option<u64>,
}

/// Adds `pagelen` and `fields` to the first page's URL.
pub(crate) fn first_page(mut url: Url, fields: Option<&str>) -> Url {
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("pagelen", &PAGELEN.to_string());
        if let Some(fields) = fields {
            query.append_pair("fields", fields);
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
    cursor.seen.insert(url.as_str().to_owned());
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
        ApiError::local(
            ErrorKind::Incomplete,
            endpoint,
            format!("a page of the listing was cut short or is not JSON ({e})"),
        )
    })?;
    let Some(values) = page.values else {
        return Err(ApiError::local(
            ErrorKind::Incomplete,
            endpoint,
            "a page of the listing has no `values`",
        ));
    };
    let mut items = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let item = T::deserialize(value).map_err(|e| {
            ApiError::local(
                ErrorKind::Decode,
                endpoint,
                format!("could not read values[{index}]: {e}"),
            )
        })?;
        items.push(item);
    }
    cursor.collected += items.len() as u64;
    if page.size.is_some() {
        cursor.size = page.size;
    }
    match page.next.as_deref().filter(|n| !n.is_empty()) {
        Some(next) => {
            let next = url.join(next).map_err(|_| {
                ApiError::local(
                    ErrorKind::Incomplete,
                    endpoint,
                    "the listing's `next` link is not a valid URL",
                )
            })?;
            if !cursor.client.same_origin(&next) {
                return Err(ApiError::local(
                    ErrorKind::Incomplete,
                    endpoint,
                    format!(
                        "refusing to follow the listing's `next` link to another host ({})",
                        next.host_str().unwrap_or("none")
                    ),
                ));
            }
            if cursor.seen.contains(next.as_str()) {
                return Err(ApiError::local(
                    ErrorKind::Incomplete,
                    endpoint,
                    "the listing's `next` link points back to a page already read",
                ));
            }
            cursor.next = Some(next);
        }
        None => {
            if let Some(size) = cursor.size {
                if size != cursor.collected {
                    return Err(ApiError::local(
                        ErrorKind::Incomplete,
                        endpoint,
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
