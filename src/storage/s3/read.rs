//! Streaming a large blob out of the bucket with byte ranges fetched ahead, in parallel.
//!
//! One GET streamed straight to the client is read from the bucket mostly while the
//! client's socket has room, over one connection, so the two take turns. Here the first GET
//! (the one `open` made anyway) still serves the first part, so the first bytes go out at
//! once, while spawned tasks fetch the following parts as ranged GETs; parts are emitted
//! strictly in order, and any failure or short part ends the stream with an error.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::task::JoinHandle;

use crate::storage::ByteStream;

/// Reads of at most this many bytes stay on the single GET (not measured against ranges):
/// they are over in a few round trips, and this way they buffer nothing of their own.
pub const PARALLEL_THRESHOLD: u64 = 16 * 1024 * 1024;

/// Bytes per ranged GET. With [`AHEAD`], measured against Garage on loopback (1 GiB and
/// 100 MiB pulls): 8 MiB x 4 was fastest; 4 MiB x 4 and 8 MiB x 2 lost to distribution on
/// 1 GiB, and a task reading the single GET ahead into a channel only matched it.
pub const PART: u64 = 8 * 1024 * 1024;

/// Ranged GETs in flight per download. Memory per download is bounded by
/// `AHEAD * PART` (the parts being fetched or fetched and waiting) plus the part being
/// emitted: every fetch buffers its whole part, and a new one starts only when the part
/// emitted before it has been handed on entirely, so a slow client holds at most
/// `(AHEAD + 1) * PART` (40 MiB) rather than making berth buffer the blob.
pub const AHEAD: usize = 4;

/// Downloads that read ahead at once, in this process. The others stream their single GET,
/// as small reads do: each reading ahead holds up to 40 MiB (more in practice, since a part's
/// chunks keep their network buffers), so without a cap memory would grow with the number of
/// large pulls instead of staying flat. Two keep one large pull fast while another starts.
const PARALLEL_DOWNLOADS: usize = 2;

/// A turn to read ahead ([`PARALLEL_DOWNLOADS`]), held by the stream until it ends or is
/// dropped; `None` when every turn is taken.
pub fn parallel_turn() -> Option<tokio::sync::OwnedSemaphorePermit> {
    static TURNS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    TURNS
        .get_or_init(|| Arc::new(tokio::sync::Semaphore::new(PARALLEL_DOWNLOADS)))
        .clone()
        .try_acquire_owned()
        .ok()
}

/// A spawned fetch that is aborted when dropped, so a client that disconnects stops the
/// ranged GETs still in flight for it.
struct Fetch(JoinHandle<io::Result<Vec<Bytes>>>);

impl Drop for Fetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Future for Fetch {
    type Output = io::Result<Vec<Bytes>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        })
    }
}

/// Fetches `range` whole, checking its length: a body cut short must fail the download, not
/// shorten it.
async fn fetch(store: Arc<AmazonS3>, key: Key, range: Range<u64>) -> io::Result<Vec<Bytes>> {
    let options = GetOptions {
        range: Some(GetRange::Bounded(range.clone())),
        ..GetOptions::default()
    };
    let mut body = store
        .get_opts(&key, options)
        .await
        .map_err(io::Error::other)?
        .into_stream();
    let want = range.end - range.start;
    let mut got = 0;
    let mut chunks = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(io::Error::other)? {
        got += chunk.len() as u64;
        if got > want {
            break;
        }
        chunks.push(chunk);
    }
    if got != want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("ranged read of {key} at {range:?} returned {got} bytes"),
        ));
    }
    Ok(chunks)
}

struct State {
    store: Arc<AmazonS3>,
    key: Key,
    /// The first GET's body, until it has served the first part.
    first: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Bytes the first body still owes.
    first_left: u64,
    /// The next offset no fetch has been started for, and the end of the read (exclusive).
    next: u64,
    end: u64,
    pending: VecDeque<Fetch>,
    /// The chunks of the part being emitted.
    current: std::vec::IntoIter<Bytes>,
    failed: bool,
    /// This download's turn to read ahead, given back when the stream goes.
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl State {
    fn top_up(&mut self) {
        while self.pending.len() < AHEAD && self.next < self.end {
            let range = self.next..(self.next + PART).min(self.end);
            self.next = range.end;
            let task = tokio::spawn(fetch(self.store.clone(), self.key.clone(), range));
            self.pending.push_back(Fetch(task));
        }
    }

    async fn step(&mut self) -> Option<io::Result<Bytes>> {
        if self.failed {
            return None;
        }
        if let Some(first) = &mut self.first {
            let item = match first.next().await {
                Some(Ok(mut chunk)) => {
                    if chunk.len() as u64 >= self.first_left {
                        chunk.truncate(self.first_left as usize);
                        // Dropping the body closes its connection; the rest comes by range.
                        self.first = None;
                    }
                    self.first_left -= chunk.len() as u64;
                    Ok(chunk)
                }
                Some(Err(e)) => Err(io::Error::other(e)),
                None => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read of {} ended {} bytes early", self.key, self.first_left),
                )),
            };
            return Some(self.fail_on_error(item));
        }
        loop {
            if let Some(chunk) = self.current.next() {
                return Some(Ok(chunk));
            }
            // The part before is handed on entirely: room for one more fetch.
            self.top_up();
            let fetch = self.pending.pop_front()?;
            match fetch.await {
                Ok(chunks) => self.current = chunks.into_iter(),
                Err(e) => return Some(self.fail_on_error(Err(e))),
            }
        }
    }

    fn fail_on_error(&mut self, item: io::Result<Bytes>) -> io::Result<Bytes> {
        if item.is_err() {
            self.failed = true;
            self.first = None;
            self.pending.clear();
        }
        item
    }
}

/// The stream of `served` (the byte range of the object the first GET's `body` answers),
/// whose first [`PART`] bytes come from `body` and the rest from ranged GETs.
pub fn parallel(
    store: Arc<AmazonS3>,
    key: Key,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    served: Range<u64>,
    turn: tokio::sync::OwnedSemaphorePermit,
) -> ByteStream {
    let first_end = (served.start + PART).min(served.end);
    let mut state = State {
        store,
        key,
        first: Some(body),
        first_left: first_end - served.start,
        next: first_end,
        end: served.end,
        pending: VecDeque::new(),
        current: Vec::new().into_iter(),
        failed: false,
        _turn: turn,
    };
    // The fetches start with the stream, overlapping the first part.
    state.top_up();
    stream::unfold(state, |mut state| async move {
        let item = state.step().await?;
        Some((item, state))
    })
    .boxed()
}
