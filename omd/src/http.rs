//! The little HTTP/1.1 that omd's opt-in web endpoints speak (`--metrics`, `--view`):
//! one request per connection, bounded in size and time, answered and closed, or kept
//! open for a stream of server-sent events. Handlers are async functions of the parsed
//! [`HttpRequest`]; connections are answered a few at a time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The address of `--metrics ADDR` or `--view ADDR`: a port alone is `127.0.0.1:PORT`
/// (local only); anything else must be an address with its port.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is neither a port nor an address with a port (e.g. 9723 or 0.0.0.0:9723)")
    })
}

/// Connections answered at once; more wait for their turn.
pub const MAX_CONNECTIONS: usize = 8;
/// A request must arrive within this.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// The most a request's head and body may hold.
pub const MAX_REQUEST: usize = 16 * 1024;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// The connection ended, or the request is longer than [`MAX_REQUEST`].
    Gone,
    Malformed(&'static str),
}

/// Parses a request from `buf`: `Ok(None)` while more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<HttpRequest>, BadRequest> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_REQUEST {
            Err(BadRequest::Gone)
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| BadRequest::Malformed("not text"))?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Err(BadRequest::Malformed("no request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(BadRequest::Malformed("not HTTP/1"));
    }
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l
            .split_once(':')
            .ok_or(BadRequest::Malformed("a header without ':'"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len = match headers.iter().find(|(n, _)| n == "content-length") {
        Some((_, v)) => v
            .parse::<usize>()
            .map_err(|_| BadRequest::Malformed("a bad Content-Length"))?,
        None => 0,
    };
    let body_at = end + 4;
    if body_at + len > MAX_REQUEST {
        return Err(BadRequest::Gone);
    }
    if buf.len() < body_at + len {
        return Ok(None);
    }
    Ok(Some(HttpRequest {
        method: method.to_string(),
        path: target.split(['?', '#']).next().unwrap_or("").to_string(),
        headers,
        body: buf[body_at..body_at + len].to_vec(),
    }))
}

/// What a handler answers.
pub enum Reply {
    /// A whole answer: status line ("200 OK"), content type, body.
    Whole(&'static str, &'static str, Vec<u8>),
    /// Server-sent events: each item the stream gives is sent as one `data:` event,
    /// until the stream ends or the client goes.
    Events(tokio::sync::mpsc::Receiver<String>),
}

impl Reply {
    pub fn text(status: &'static str, body: impl Into<String>) -> Self {
        Reply::Whole(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }
}

/// Answers connections on `listener` with `handle` until the runtime stops.
pub async fn serve<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send,
{
    let handle = Arc::new(handle);
    let turns = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(turn) = turns.clone().acquire_owned().await else {
            return;
        };
        let Ok((s, _)) = listener.accept().await else {
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = answer(s, &*handle).await;
            drop(turn);
        });
    }
}

async fn read_request(s: &mut TcpStream) -> Result<HttpRequest, BadRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(r) = parse(&buf)? {
            return Ok(r);
        }
        let n = s.read(&mut chunk).await.map_err(|_| BadRequest::Gone)?;
        if n == 0 {
            return Err(BadRequest::Gone);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn answer<F, Fut>(mut s: TcpStream, handle: &F) -> std::io::Result<()>
where
    F: Fn(HttpRequest) -> Fut,
    Fut: Future<Output = Reply>,
{
    let reply = match tokio::time::timeout(REQUEST_DEADLINE, read_request(&mut s)).await {
        Ok(Ok(r)) => handle(r).await,
        Ok(Err(BadRequest::Malformed(why))) => Reply::text("400 Bad Request", format!("{why}\n")),
        Ok(Err(BadRequest::Gone)) | Err(_) => return Ok(()),
    };
    match reply {
        Reply::Whole(status, kind, body) => {
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await?;
            s.write_all(&body).await?;
            s.shutdown().await
        }
        Reply::Events(mut rx) => {
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                  Connection: close\r\n\r\n",
            )
            .await?;
            while let Some(data) = rx.recv().await {
                let event = format!("data: {}\n\n", data.replace('\n', "\ndata: "));
                s.write_all(event.as_bytes()).await?;
            }
            s.shutdown().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes a local user sends: never a panic, and a request only within bounds.
        #[test]
        fn parse_never_panics_and_stays_bounded(
            head in "[A-Z]{0,7} /[a-z?#=]{0,20} HTTP/1\\.[01]\r\n([a-zA-Z-]{1,12}: [0-9a-z]{0,12}\r\n){0,5}\r\n",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            noise in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let _ = parse(&noise);
            let mut buf = head.into_bytes();
            buf.extend_from_slice(&body);
            if let Ok(Some(r)) = parse(&buf) {
                prop_assert!(r.body.len() <= MAX_REQUEST);
                prop_assert!(!r.path.contains('?'));
            }
        }
    }

    #[test]
    fn addresses_default_to_localhost_and_name_what_is_wrong() {
        assert_eq!(parse_addr("9723"), Ok("127.0.0.1:9723".parse().unwrap()));
        assert_eq!(parse_addr("0.0.0.0:80"), Ok("0.0.0.0:80".parse().unwrap()));
        assert_eq!(parse_addr("[::1]:9723"), Ok("[::1]:9723".parse().unwrap()));
        let e = parse_addr("localhost").unwrap_err();
        assert!(e.contains("\"localhost\""), "{e}");
    }

    #[test]
    fn requests_are_parsed_whole_and_bounded() {
        let r = b"POST /migrate?x=1 HTTP/1.1\r\nX-Token: ab\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(&r[..20]), Ok(None));
        assert_eq!(parse(&r[..r.len() - 1]), Ok(None));
        let p = parse(r).unwrap().unwrap();
        assert_eq!((p.method.as_str(), p.path.as_str()), ("POST", "/migrate"));
        assert_eq!(p.header("x-token"), Some("ab"));
        assert_eq!(p.body, b"hello");
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            Err(BadRequest::Gone)
        );
        assert_eq!(parse(&vec![b'a'; MAX_REQUEST + 1]), Err(BadRequest::Gone));
        assert!(matches!(
            parse(b"GET\r\n\r\n"),
            Err(BadRequest::Malformed(_))
        ));
        assert!(matches!(
            parse(b"GET / SPDY\r\n\r\n"),
            Err(BadRequest::Malformed(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nbad header\r\n\r\n"),
            Err(BadRequest::Malformed(_))
        ));
    }
}
