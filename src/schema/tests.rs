use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn errors(schema: Value, value: Value) -> Vec<String> {
    validate(&schema, &value).err().unwrap_or_default()
}

/// The kind of schema OpenAI's strict structured outputs accept: every property required,
/// no others, definitions referred to by `$ref`.
fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string", "minLength": 1},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "source": {"anyOf": [{"$ref": "#/$defs/source"}, {"type": "null"}]}
        },
        "required": ["answer", "confidence", "tags", "source"],
        "additionalProperties": false,
        "$defs": {
            "source": {
                "type": "object",
                "properties": {"url": {"type": "string", "pattern": "^https://"}, "kind": {"enum": ["doc", "web"]}},
                "required": ["url", "kind"],
                "additionalProperties": false
            }
        }
    })
}

#[test]
fn a_conforming_answer_passes() {
    let ok = json!({"answer": "42", "confidence": 0.9, "tags": ["math"],
                    "source": {"url": "https://example.org", "kind": "doc"}});
    assert_eq!(validate(&answer_schema(), &ok), Ok(()));
    let null_source = json!({"answer": "42", "confidence": 1, "tags": [], "source": null});
    assert_eq!(validate(&answer_schema(), &null_source), Ok(()));
}

#[test]
fn each_mistake_is_named_with_its_path() {
    let bad = json!({"answer": 42, "confidence": 1.5, "tags": ["a", 2, "c", "d"],
                     "source": {"url": "http://x", "kind": "blog"}, "extra": true});
    let e = errors(answer_schema(), bad);
    let expect = [
        "$.answer: expected string, got number",
        "$.confidence: expected at most 1, got 1.5",
        "$.tags: expected at most 3 items, got 4",
        "$.tags[1]: expected string, got number",
        "$: unexpected property \"extra\"",
    ];
    for m in expect {
        assert!(e.contains(&m.to_owned()), "{m} not in {e:#?}");
    }
    // The anyOf says which alternative came closest and why.
    assert!(
        e.iter().any(
            |m| m.starts_with("$.source: matches none of the 2 anyOf alternatives")
                && m.contains("\"blog\"")
        ),
        "{e:#?}"
    );
}

#[test]
fn missing_required_properties_are_named() {
    let e = errors(
        answer_schema(),
        json!({"answer": "x", "confidence": 0, "tags": []}),
    );
    assert_eq!(
        e,
        vec!["$: missing required property \"source\"".to_owned()]
    );
}

#[test]
fn types_may_be_listed_and_integers_are_numbers() {
    let s = json!({"type": ["string", "null"]});
    assert!(is_valid(&s, &json!(null)) && is_valid(&s, &json!("x")));
    assert_eq!(
        errors(s, json!(3)),
        ["$: expected string or null, got number"]
    );
    assert!(is_valid(&json!({"type": "number"}), &json!(3)));
    assert!(is_valid(&json!({"type": "integer"}), &json!(3.0)));
    assert_eq!(
        errors(json!({"type": "integer"}), json!(3.5)),
        ["$: expected integer, got number"]
    );
    assert_eq!(
        errors(json!({"type": "object"}), json!([])),
        ["$: expected object, got array"]
    );
}

#[test]
fn enum_and_const_compare_numbers_by_value() {
    assert!(is_valid(&json!({"enum": [1, "a"]}), &json!(1.0)));
    assert!(is_valid(
        &json!({"const": {"a": [1]}}),
        &json!({"a": [1.0]})
    ));
    assert_eq!(
        errors(json!({"enum": ["a", "b"]}), json!("c")),
        ["$: expected one of \"a\", \"b\", got \"c\""]
    );
    assert_eq!(
        errors(json!({"const": 5}), json!(6)),
        ["$: expected 5, got 6"]
    );
}

#[test]
fn strings_count_characters_and_match_patterns() {
    let s = json!({"type": "string", "minLength": 2, "maxLength": 3});
    assert!(is_valid(&s, &json!("éé")), "two characters, four bytes");
    assert_eq!(
        errors(s, json!("abcd")),
        ["$: expected at most 3 characters, got 4"]
    );
    let p = json!({"pattern": "^[a-z]+-[0-9]{2}$"});
    assert!(is_valid(&p, &json!("ab-12")));
    assert_eq!(
        errors(p, json!("ab-1")),
        ["$: expected a string matching \"^[a-z]+-[0-9]{2}$\", got \"ab-1\""]
    );
    // Look-ahead is ECMA-262 but not the regex crate's: skipped, not failed.
    assert!(is_valid(&json!({"pattern": "^(?=a)b"}), &json!("zzz")));
    // A pattern is unanchored, as in JSON Schema.
    assert!(is_valid(&json!({"pattern": "[0-9]"}), &json!("a1b")));
}

#[test]
fn refs_resolve_to_defs_definitions_and_the_root() {
    let tree = json!({
        "type": "object",
        "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["value"]
    });
    assert!(is_valid(
        &tree,
        &json!({"value": 1, "children": [{"value": 2, "children": []}]})
    ));
    assert_eq!(
        errors(tree, json!({"value": 1, "children": [{"value": "two"}]})),
        ["$.children[0].value: expected integer, got string"]
    );
    let legacy = json!({"definitions": {"n": {"type": "number"}}, "$ref": "#/definitions/n"});
    assert_eq!(
        errors(legacy, json!("x")),
        ["$: expected number, got string"]
    );
    assert_eq!(
        errors(json!({"$ref": "#/$defs/missing"}), json!(1)),
        ["$: $ref \"#/$defs/missing\" does not resolve"]
    );
    // A reference to itself that never reaches the value ends with a message, not a hang.
    let endless = json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"});
    let e = errors(endless, json!(1));
    assert!(e.iter().any(|m| m.contains("endlessly")), "{e:?}");
}

#[test]
fn other_keywords_of_the_subset() {
    assert!(!is_valid(&json!(false), &json!(1)));
    assert!(is_valid(&json!(true), &json!(1)));
    assert!(is_valid(&json!({}), &json!({"any": "thing"})));
    let n = json!({"exclusiveMinimum": 0, "exclusiveMaximum": 10, "multipleOf": 0.5});
    assert!(is_valid(&n, &json!(2.5)));
    assert_eq!(errors(n.clone(), json!(0)).len(), 1);
    assert_eq!(
        errors(n, json!(2.2)),
        ["$: expected a multiple of 0.5, got 2.2"]
    );
    let tuple = json!({"prefixItems": [{"type": "string"}, {"type": "number"}], "items": false});
    assert!(is_valid(&tuple, &json!(["a", 1])));
    assert_eq!(
        errors(tuple, json!(["a", 1, 2])),
        ["$[2]: no value is allowed here"]
    );
    assert_eq!(
        errors(json!({"uniqueItems": true}), json!([1, 2, 1.0])),
        ["$: expected unique items, got item 2 equal to item 0"]
    );
    let one = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
    assert_eq!(
        errors(one, json!(1)),
        ["$: matches 2 of the oneOf alternatives, not exactly one"]
    );
    assert_eq!(
        errors(json!({"not": {"type": "null"}}), json!(null)),
        ["$: matches the schema under `not`"]
    );
    let pp =
        json!({"patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": false});
    assert!(is_valid(&pp, &json!({"x-a": "1"})));
    assert_eq!(errors(pp, json!({"x-a": 1, "b": 2})).len(), 2);
    assert_eq!(
        errors(
            json!({"properties": {"a b": {"type": "string"}}}),
            json!({"a b": 1})
        ),
        ["$[\"a b\"]: expected string, got number"]
    );
    // Annotations never fail a value.
    assert!(is_valid(
        &json!({"type": "string", "format": "email", "description": "d"}),
        &json!("not an email")
    ));
}

/// A JSON value of bounded depth.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The schema a value itself describes: its type, and for containers its parts, all
/// required and nothing else allowed.
fn schema_of(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            json!({"type": "array", "prefixItems": items.iter().map(schema_of).collect::<Vec<_>>(),
                   "items": false, "minItems": items.len()})
        }
        Value::Object(o) => json!({
            "type": "object",
            "properties": o.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect::<Map<_, _>>(),
            "required": o.keys().collect::<Vec<_>>(),
            "additionalProperties": false
        }),
        other => json!({"type": type_of(other), "const": other}),
    }
}

proptest! {
    #[test]
    fn a_value_fits_the_schema_it_describes(v in any_value()) {
        prop_assert_eq!(validate(&schema_of(&v), &v), Ok(()));
        let listed = json!({"enum": [v.clone()]});
        prop_assert!(is_valid(&listed, &v));
    }

    /// Any change to a value is caught by the schema of the original, with a message that
    /// names a path, and validating never panics on arbitrary schema/value pairs.
    #[test]
    fn a_changed_value_is_refused_with_a_path(a in any_value(), b in any_value()) {
        let r = validate(&schema_of(&a), &b);
        if equal(&a, &b) {
            prop_assert_eq!(r, Ok(()));
        } else {
            let e = r.expect_err("a different value passed");
            let named = e.iter().all(|m| m.starts_with('$') && m.contains(": "));
            prop_assert!(named, "{:?}", e);
        }
        let _ = validate(&a, &b);
    }
}
