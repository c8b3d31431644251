//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), parsed leniently
//! because registries and their proxies format them in many ways.

use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Challenge {
    /// The auth scheme, lowercased (`bearer`, `basic`).
    pub(super) scheme: String,
    /// Parameters with lowercased names, values unquoted and unescaped.
    pub(super) params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lowercase).
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1) leniently: several
/// challenges, quoted values with commas and escapes, odd whitespace,
/// unquoted values. Never fails; garbage yields fewer challenges.
pub(super) fn parse_challenges(input: &str) -> Vec<Challenge> {
    let mut c = Cursor {
        s: input.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        c.skip(|b| b == b',' || is_ws(b));
        if c.eof() {
            return out;
        }
        let scheme = c.token();
        if scheme.is_empty() {
            c.pos += 1; // not a token character: skip it
            continue;
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        loop {
            let before = c.pos;
            c.skip(is_ws);
            let name = c.token();
            c.skip(is_ws);
            if name.is_empty() || c.peek() != Some(b'=') {
                c.pos = before; // the next challenge's scheme, or junk
                break;
            }
            c.pos += 1;
            c.skip(is_ws);
            let value = if c.peek() == Some(b'"') {
                c.quoted()
            } else {
                c.take_while(|b| b != b',' && !is_ws(b))
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
            c.skip(is_ws);
            if c.peek() != Some(b',') {
                break;
            }
            c.pos += 1;
        }
        out.push(challenge);
    }
}

/// Every challenge of every `WWW-Authenticate` header.
pub(super) fn challenges_of(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
    }
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        self.skip(f);
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }
    fn token(&mut self) -> String {
        self.take_while(is_tchar)
    }
    /// A quoted string starting at `"`; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn docker_hub_challenge() {
        let v = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#;
        assert_eq!(
            parse_challenges(v),
            vec![ch(
                "bearer",
                &[
                    ("realm", "https://auth.docker.io/token"),
                    ("service", "registry.docker.io"),
                    ("scope", "repository:library/alpine:pull"),
                ]
            )]
        );
    }

    #[test]
    fn quoted_commas_escapes_and_spacing() {
        let v = r#"  BEARER   Realm = "https://a/t?x=1,2" ,  scope="repository:a/b:pull,push", error="say \"hi\"\\"  "#;
        let c = &parse_challenges(v)[0];
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://a/t?x=1,2"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some(r#"say "hi"\"#));
    }

    #[test]
    fn several_challenges_and_unquoted_values() {
        let v = r#"Basic realm="Registry Realm", Bearer realm=https://auth.example/token,service=reg, Negotiate"#;
        assert_eq!(
            parse_challenges(v),
            vec![
                ch("basic", &[("realm", "Registry Realm")]),
                ch(
                    "bearer",
                    &[("realm", "https://auth.example/token"), ("service", "reg")]
                ),
                ch("negotiate", &[]),
            ]
        );
        assert_eq!(parse_challenges("Basic"), vec![ch("basic", &[])]);
    }

    #[test]
    fn garbage_does_not_panic_or_loop() {
        for v in [
            "",
            ",,,",
            "\"",
            "=",
            "Bearer realm=",
            "Bearer realm=\"unterminated",
            "Bearer realm=\"x\\",
            "Bearer ,,, realm=\"x\"",
            "Bearer realm=\"x\" junk tail=",
            "Negotiate YII+/abc==",
            "()<>@;:\\/[]?{}",
            "Bearer rëalm=\"ünï\"",
        ] {
            let _ = parse_challenges(v);
        }
        let c = parse_challenges("Bearer realm=\"unterminated");
        assert_eq!(c[0].param("realm"), Some("unterminated"));
    }
}
