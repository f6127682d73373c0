//! URL and body templates of `[e2e]`: compiled once into literal and placeholder parts, rendered
//! per request into a reused buffer. An unknown placeholder is a config error.

use std::fmt;

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{base}`: `e2e.base_url`.
    Base,
    /// `{channel}`: the channel's uuid.
    Channel,
    /// `{subscriber}`: the subscriber's number.
    Subscriber,
    /// `{message_id}`: the message's correlation id (a uuid v4).
    MessageId,
    /// `{sender_id}`: the sender's uuid.
    SenderId,
    /// `{text}`: the message text, JSON-escaped (without quotes).
    Text,
    /// `{seq}`: the message's number within its channel.
    Seq,
    /// `{ts_ms}`: the scheduled instant, milliseconds since the Unix epoch.
    TsMs,
    /// `{instance}`: `instance.index`.
    Instance,
}

impl Placeholder {
    /// Every placeholder with its name.
    pub const ALL: [(&'static str, Placeholder); 9] = [
        ("base", Placeholder::Base),
        ("channel", Placeholder::Channel),
        ("subscriber", Placeholder::Subscriber),
        ("message_id", Placeholder::MessageId),
        ("sender_id", Placeholder::SenderId),
        ("text", Placeholder::Text),
        ("seq", Placeholder::Seq),
        ("ts_ms", Placeholder::TsMs),
        ("instance", Placeholder::Instance),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value(Placeholder),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Template {
    /// Compile `text`. `{name}` (lowercase letters and `_`) is a placeholder, and only those in
    /// `allowed` may appear (a subscriber URL has no `{message_id}`); every other character,
    /// JSON's braces included, is literal.
    pub fn compile(text: &str, allowed: &[Placeholder]) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('{') {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            let name_len = tail[1..]
                .bytes()
                .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
                .count();
            if name_len == 0 || tail.as_bytes().get(1 + name_len) != Some(&b'}') {
                literal.push('{');
                rest = &tail[1..];
                continue;
            }
            let name = &tail[1..1 + name_len];
            let Some((_, p)) = Placeholder::ALL.iter().find(|(n, _)| *n == name) else {
                let known: Vec<String> = allowed
                    .iter()
                    .map(|p| format!("{{{}}}", name_of(*p)))
                    .collect();
                return Err(TemplateError(format!(
                    "unknown placeholder {{{name}}}; this template knows {}",
                    known.join(" ")
                )));
            };
            if !allowed.contains(p) {
                return Err(TemplateError(format!(
                    "{{{name}}} has no value in this template"
                )));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Value(*p));
            rest = &tail[2 + name_len..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// Whether the template uses `p`.
    pub fn uses(&self, p: Placeholder) -> bool {
        self.parts.contains(&Part::Value(p))
    }

    /// Append the rendering to `out`; `value` writes each placeholder's value.
    pub fn render_into(&self, out: &mut String, mut value: impl FnMut(Placeholder, &mut String)) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Value(p) => value(*p, out),
            }
        }
    }

    /// The rendering as a new string.
    pub fn render(&self, value: impl FnMut(Placeholder, &mut String)) -> String {
        let mut s = String::new();
        self.render_into(&mut s, value);
        s
    }
}

fn name_of(p: Placeholder) -> &'static str {
    Placeholder::ALL
        .iter()
        .find(|(_, q)| *q == p)
        .map(|(n, _)| *n)
        .expect("every placeholder has a name")
}

/// Append `s` to `out` escaped for the inside of a JSON string.
pub fn push_json_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Placeholder::*;

    #[test]
    fn renders_literals_and_placeholders() {
        let t = Template::compile(
            "{base}/api/v1/channels/{channel}/messages?x={Y}",
            &[Base, Channel],
        )
        .unwrap();
        let s = t.render(|p, out| match p {
            Base => out.push_str("http://h:1"),
            Channel => out.push_str("c1"),
            _ => unreachable!(),
        });
        assert_eq!(s, "http://h:1/api/v1/channels/c1/messages?x={Y}");
        let body = Template::compile(r#"{"id":"{message_id}","n":{seq}}"#, &[MessageId, Seq])
            .unwrap()
            .render(|p, out| out.push_str(if p == Seq { "7" } else { "m" }));
        assert_eq!(body, r#"{"id":"m","n":7}"#);
        assert!(t.uses(Channel) && !t.uses(Text));
    }

    #[test]
    fn unknown_or_unavailable_placeholders_are_errors() {
        let e = Template::compile("{base}/{chanel}", &[Base, Channel]).unwrap_err();
        assert!(e.0.contains("unknown placeholder {chanel}"), "{e}");
        assert!(e.0.contains("{channel}"), "names the known ones: {e}");
        let e = Template::compile("{base}?u={subscriber}", &[Base, Channel]).unwrap_err();
        assert!(e.0.contains("{subscriber} has no value"), "{e}");
        assert!(
            Template::compile("{base", &[Base]).is_ok(),
            "not a placeholder"
        );
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        push_json_escaped(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001é");
        let v: serde_json::Value = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }
}
