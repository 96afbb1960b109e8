//! Just enough HTTP/1.1 for an OpenAI-compatible API on std's sockets, one thread per
//! connection: request heads parsed by `httparse` (ureq's parser, already in the build, so
//! serving adds no server stack), bodies delimited by `Content-Length`, persistent connections,
//! `Expect: 100-continue`, and responses either sized or, for server-sent events, ended by
//! closing the connection.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// Headers larger than this are refused (a request head is a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Headers per request at most.
const MAX_HEADERS: usize = 64;

/// One request. The path has its query string removed.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// The client asked to close the connection after this exchange (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub close: bool,
}

/// Why no request could be read. [`Self::status`] says whether the client should be told.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    #[error("the request body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("request bodies must be sent with Content-Length (chunked transfer encoding is not supported)")]
    LengthRequired,
}

impl HttpError {
    /// The status to answer with before closing, or `None` when the connection is gone.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Io(_) => None,
            Self::Malformed(_) => Some(400),
            Self::TooLarge { .. } => Some(413),
            Self::LengthRequired => Some(411),
        }
    }
}

/// A client connection; bytes read past one request stay buffered for the next.
pub struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Self {
        Self { stream, buffer: Vec::new() }
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next request, or `None` when the client closed the connection between requests.
    pub fn read_request(&mut self, max_body: usize) -> Result<Option<Request>, HttpError> {
        let (head_len, method, path, content_length, close, expect_continue) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&self.buffer) {
                Ok(httparse::Status::Complete(len)) => {
                    let mut content_length = 0usize;
                    let mut connection = None;
                    let mut expect_continue = false;
                    for header in request.headers.iter() {
                        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
                        if header.name.eq_ignore_ascii_case("content-length") {
                            content_length =
                                value.parse().map_err(|_| HttpError::Malformed(format!("Content-Length {value:?}")))?;
                        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                            return Err(HttpError::LengthRequired);
                        } else if header.name.eq_ignore_ascii_case("connection") {
                            connection = Some(value.to_ascii_lowercase());
                        } else if header.name.eq_ignore_ascii_case("expect") {
                            expect_continue = value.eq_ignore_ascii_case("100-continue");
                        }
                    }
                    let close = match (request.version, connection.as_deref()) {
                        (_, Some("close")) => true,
                        (Some(0), c) => c != Some("keep-alive"),
                        _ => false,
                    };
                    let method = request.method.unwrap_or_default().to_string();
                    let target = request.path.unwrap_or_default();
                    let path = target.split('?').next().unwrap_or_default().to_string();
                    break (len, method, path, content_length, close, expect_continue);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buffer.len() > MAX_HEAD {
                        return Err(HttpError::Malformed(format!("request head over {MAX_HEAD} bytes")));
                    }
                    if !self.fill()? {
                        if self.buffer.is_empty() {
                            return Ok(None);
                        }
                        return Err(HttpError::Malformed("connection closed inside the request head".into()));
                    }
                }
                Err(e) => return Err(HttpError::Malformed(e.to_string())),
            }
        };
        if content_length > max_body {
            return Err(HttpError::TooLarge { size: content_length, limit: max_body });
        }
        // curl sends this for bodies over 1 KiB (an image data URL) and waits a second for it.
        if expect_continue && self.buffer.len() < head_len + content_length {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        while self.buffer.len() < head_len + content_length {
            if !self.fill()? {
                return Err(HttpError::Malformed("connection closed inside the request body".into()));
            }
        }
        let body = self.buffer[head_len..head_len + content_length].to_vec();
        self.buffer.drain(..head_len + content_length);
        Ok(Some(Request { method, path, body, close }))
    }

    /// A complete response with a body of known length.
    pub fn respond(&mut self, status: u16, content_type: &str, body: &[u8], close: bool) -> io::Result<()> {
        let connection = if close { "close" } else { "keep-alive" };
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
            reason(status),
            body.len()
        );
        let mut message = head.into_bytes();
        message.extend_from_slice(body);
        self.stream.write_all(&message)?;
        self.stream.flush()
    }

    /// Starts a `text/event-stream` response. Its length is unknown, so the connection closes
    /// after the last event (simpler for every client than chunked encoding).
    pub fn start_events(&mut self) -> io::Result<()> {
        self.stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        )?;
        self.stream.flush()
    }

    /// One server-sent event, `data: {data}` and a blank line, sent at once.
    pub fn event(&mut self, data: &str) -> io::Result<()> {
        self.stream.write_all(format!("data: {data}\n\n").as_bytes())?;
        self.stream.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}
