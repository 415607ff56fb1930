//! JSON Schema validation for the subset LLM providers accept in structured outputs
//! (OpenAI's `response_format.json_schema`, Anthropic's `output_config.format`): `type`
//! (one or a list), `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `patternProperties`, `items` (a schema, or a list for tuples), `prefixItems`, `anyOf`,
//! `allOf`, `oneOf`, `not`, `$ref` to a JSON pointer within the schema (`#`, `#/$defs/…`,
//! `#/definitions/…`), `minimum`/`maximum` and their exclusive forms, `multipleOf`,
//! `minLength`/`maxLength`, `pattern`, `minItems`/`maxItems`, `uniqueItems`,
//! `minProperties`/`maxProperties`, and `true`/`false` schemas. Other keywords (`format`,
//! `description`, `title`, `default`, …) are annotations here and never fail a value.
//!
//! Own code rather than the `jsonschema` crate: that one implements every draft with remote
//! references, formats and its own regex engines (some twenty crates more to build on two
//! cores), where the gateway and the evaluation sets need this subset, on values already
//! parsed, with messages a person reads. `regex` is already built for kube.
//!
//! `pattern` uses the `regex` crate's syntax, which is ECMA-262's for what schemas use in
//! practice (classes, anchors, repetition) but has no look-around or backreferences: a
//! pattern it cannot compile is skipped, not failed.
//!
//! Pure domain code: no Kubernetes or gateway types.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write as _;

use regex::Regex;
use serde_json::{Map, Value};

/// The deepest chain of `$ref`s followed without descending into the value: a schema that
/// refers to itself that way (`{"$ref": "#"}`) would loop forever.
const MAX_REF_CHAIN: usize = 32;

/// Whether `value` conforms to `schema`; otherwise every place it does not, as
/// `$.path: what was expected, got what` (for example `$.answer: expected string, got number`).
pub fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let mut v = Validator {
        root: schema,
        regexes: HashMap::new(),
        errors: vec![],
    };
    let mut path = String::from("$");
    v.check(schema, value, &mut path, 0);
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

/// Whether `value` conforms to `schema`, without the messages.
pub fn is_valid(schema: &Value, value: &Value) -> bool {
    validate(schema, value).is_ok()
}

/// The JSON type of a value as schemas name it (`integer` for a whole number).
pub fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

struct Validator<'s> {
    root: &'s Value,
    /// Compiled patterns of this run (`None`: the regex crate cannot express it).
    regexes: HashMap<&'s str, Option<Regex>>,
    errors: Vec<String>,
}

impl<'s> Validator<'s> {
    fn fail(&mut self, path: &str, message: impl std::fmt::Display) {
        self.errors.push(format!("{path}: {message}"));
    }

    /// Checks `value` (at `path`) against `schema`; `refs` counts the `$ref`s followed
    /// since the last step into the value.
    fn check(&mut self, schema: &'s Value, value: &Value, path: &mut String, refs: usize) {
        let s = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return self.fail(path, "no value is allowed here"),
            Value::Object(s) => s,
            // Not a schema: nothing it could require.
            _ => return,
        };
        if let Some(Value::String(r)) = s.get("$ref") {
            match resolve(self.root, r) {
                Some(_) if refs >= MAX_REF_CHAIN => {
                    self.fail(path, format_args!("$ref {r:?} refers to itself endlessly"))
                }
                Some(target) => self.check(target, value, path, refs + 1),
                None => self.fail(path, format_args!("$ref {r:?} does not resolve")),
            }
        }
        if let Some(t) = s.get("type") {
            self.check_type(t, value, path);
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.iter().any(|o| equal(o, value))
        {
            let listed: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            self.fail(
                path,
                format_args!(
                    "expected one of {}, got {}",
                    listed.join(", "),
                    brief(value)
                ),
            );
        }
        if let Some(c) = s.get("const")
            && !equal(c, value)
        {
            self.fail(path, format_args!("expected {c}, got {}", brief(value)));
        }
        self.check_combinators(s, value, path, refs);
        match value {
            Value::Number(n) => self.check_number(s, n, path),
            Value::String(text) => self.check_string(s, text, path),
            Value::Array(items) => self.check_array(s, items, path),
            Value::Object(o) => self.check_object(s, o, path),
            Value::Null | Value::Bool(_) => {}
        }
    }

    fn check_type(&mut self, t: &Value, value: &Value, path: &str) {
        let actual = type_of(value);
        let fits = |name: &str| name == actual || (name == "number" && actual == "integer");
        // Messages call every number a number: "expected string, got integer" reads oddly.
        let actual = if actual == "integer" {
            "number"
        } else {
            actual
        };
        let (ok, wanted) = match t {
            Value::String(name) => (fits(name), name.clone()),
            Value::Array(names) => {
                let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
                (names.iter().any(|n| fits(n)), names.join(" or "))
            }
            _ => return,
        };
        if !ok {
            self.fail(path, format_args!("expected {wanted}, got {actual}"));
        }
    }

    fn check_combinators(
        &mut self,
        s: &'s Map<String, Value>,
        value: &Value,
        path: &mut String,
        refs: usize,
    ) {
        if let Some(Value::Array(all)) = s.get("allOf") {
            for sub in all {
                self.check(sub, value, path, refs);
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf") {
            let fits: Vec<Vec<String>> = any.iter().map(|a| self.sub(a, value, path)).collect();
            if !fits.iter().any(Vec::is_empty) {
                self.fail(
                    path,
                    format_args!(
                        "matches none of the {} anyOf alternatives ({})",
                        any.len(),
                        closest(&fits, path)
                    ),
                );
            }
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let fits: Vec<Vec<String>> = one.iter().map(|a| self.sub(a, value, path)).collect();
            match fits.iter().filter(|f| f.is_empty()).count() {
                1 => {}
                0 => self.fail(
                    path,
                    format_args!(
                        "matches none of the {} oneOf alternatives ({})",
                        one.len(),
                        closest(&fits, path)
                    ),
                ),
                n => self.fail(
                    path,
                    format_args!("matches {n} of the oneOf alternatives, not exactly one"),
                ),
            }
        }
        if let Some(not) = s.get("not")
            && self.sub(not, value, path).is_empty()
        {
            self.fail(path, "matches the schema under `not`");
        }
    }

    /// The errors `value` has against `schema`, kept apart from this run's.
    fn sub(&mut self, schema: &'s Value, value: &Value, path: &mut String) -> Vec<String> {
        let outer = std::mem::take(&mut self.errors);
        self.check(schema, value, path, 0);
        std::mem::replace(&mut self.errors, outer)
    }

    fn check_number(&mut self, s: &Map<String, Value>, n: &serde_json::Number, path: &str) {
        let Some(x) = n.as_f64() else { return };
        let bound = |k: &str| s.get(k).and_then(Value::as_f64);
        if let Some(min) = bound("minimum")
            && x < min
        {
            self.fail(path, format_args!("expected at least {min}, got {n}"));
        }
        if let Some(max) = bound("maximum")
            && x > max
        {
            self.fail(path, format_args!("expected at most {max}, got {n}"));
        }
        if let Some(min) = bound("exclusiveMinimum")
            && x <= min
        {
            self.fail(path, format_args!("expected more than {min}, got {n}"));
        }
        if let Some(max) = bound("exclusiveMaximum")
            && x >= max
        {
            self.fail(path, format_args!("expected less than {max}, got {n}"));
        }
        if let Some(m) = bound("multipleOf")
            && m > 0.0
        {
            let q = x / m;
            if (q - q.round()).abs() > 1e-9 {
                self.fail(path, format_args!("expected a multiple of {m}, got {n}"));
            }
        }
    }

    fn check_string(&mut self, s: &'s Map<String, Value>, text: &str, path: &str) {
        // Lengths count characters (code points), as JSON Schema does, not bytes.
        let len = || text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len() < min
        {
            self.fail(
                path,
                format_args!("expected at least {min} characters, got {}", len()),
            );
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len() > max
        {
            self.fail(
                path,
                format_args!("expected at most {max} characters, got {}", len()),
            );
        }
        if let Some(Value::String(p)) = s.get("pattern")
            && self.regex(p).is_some_and(|r| !r.is_match(text))
        {
            self.fail(
                path,
                format_args!("expected a string matching {p:?}, got {}", brief_str(text)),
            );
        }
    }

    fn regex(&mut self, pattern: &'s str) -> Option<&Regex> {
        self.regexes
            .entry(pattern)
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()
    }

    fn check_array(&mut self, s: &'s Map<String, Value>, items: &[Value], path: &mut String) {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && n < min
        {
            self.fail(path, format_args!("expected at least {min} items, got {n}"));
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && n > max
        {
            self.fail(path, format_args!("expected at most {max} items, got {n}"));
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if let Some(j) = items[..i].iter().position(|b| equal(a, b)) {
                    self.fail(
                        path,
                        format_args!("expected unique items, got item {i} equal to item {j}"),
                    );
                    break;
                }
            }
        }
        // A tuple's schemas: `prefixItems` (2020-12) or `items` as a list (draft 4 to 2019-09).
        let (prefix, rest) = match (s.get("prefixItems"), s.get("items")) {
            (Some(Value::Array(p)), rest) => (p.as_slice(), rest),
            (_, Some(Value::Array(p))) => (p.as_slice(), s.get("additionalItems")),
            (_, rest) => (&[][..], rest),
        };
        for (i, item) in items.iter().enumerate() {
            let schema = match prefix.get(i) {
                Some(p) => p,
                None => match rest {
                    Some(r) => r,
                    None => break,
                },
            };
            let len = path.len();
            let _ = write!(path, "[{i}]");
            self.check(schema, item, path, 0);
            path.truncate(len);
        }
    }

    fn check_object(
        &mut self,
        s: &'s Map<String, Value>,
        o: &Map<String, Value>,
        path: &mut String,
    ) {
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !o.contains_key(name) {
                    self.fail(path, format_args!("missing required property {name:?}"));
                }
            }
        }
        let n = o.len() as u64;
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
            && n < min
        {
            self.fail(
                path,
                format_args!("expected at least {min} properties, got {n}"),
            );
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
            && n > max
        {
            self.fail(
                path,
                format_args!("expected at most {max} properties, got {n}"),
            );
        }
        let properties = s.get("properties").and_then(Value::as_object);
        let patterns = s.get("patternProperties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        for (name, item) in o {
            let len = path.len();
            push_key(path, name);
            let mut known = false;
            if let Some(p) = properties.and_then(|p| p.get(name)) {
                known = true;
                self.check(p, item, path, 0);
            }
            for (pattern, p) in patterns.into_iter().flatten() {
                if self.regex(pattern).is_some_and(|r| r.is_match(name)) {
                    known = true;
                    self.check(p, item, path, 0);
                }
            }
            if !known {
                match additional {
                    Some(Value::Bool(false)) => {
                        path.truncate(len);
                        self.fail(path, format_args!("unexpected property {name:?}"));
                    }
                    Some(a) => self.check(a, item, path, 0),
                    None => {}
                }
            }
            path.truncate(len);
        }
    }
}

/// The schema a local `$ref` points at: `#` or a JSON pointer after it.
fn resolve<'s>(root: &'s Value, reference: &str) -> Option<&'s Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    // Percent-encoding of a pointer in a URI fragment is rare in schemas; `~0`/`~1` escapes
    // are handled by `pointer`.
    root.pointer(pointer)
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), as JSON Schema wants.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// `.name` for a plain identifier, `["any key"]` otherwise.
fn push_key(path: &mut String, name: &str) {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        path.push('.');
        path.push_str(name);
    } else {
        let _ = write!(path, "[{}]", Value::String(name.to_owned()));
    }
}

/// A value for a message: scalars as they are (strings shortened), containers by type.
fn brief(value: &Value) -> String {
    match value {
        Value::String(s) => brief_str(s),
        Value::Array(_) | Value::Object(_) => type_of(value).to_owned(),
        other => other.to_string(),
    }
}

fn brief_str(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    }
}

/// The messages of the alternative that came closest: one whose mistakes lie deeper in the
/// value than `path` (its type fitted) before one refused outright, then the fewest.
fn closest(fits: &[Vec<String>], path: &str) -> String {
    let here = format!("{path}: ");
    fits.iter()
        .min_by_key(|f| (f.iter().any(|m| m.starts_with(&here)), f.len()))
        .map(|f| f.join("; "))
        .unwrap_or_default()
}
