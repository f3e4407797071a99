//! Test support: a checker for the subset of Swagger 2.0 / JSON Schema that Firecracker's API
//! definitions use for the objects we emit: `type`, `required`, `properties`, `items`, `enum`,
//! `minimum`, `maximum`, `$ref`, `additionalProperties`. Unknown properties are errors unless
//! `additionalProperties: true` (Firecracker's serde types deny unknown fields).

use std::path::PathBuf;

use serde_json::Value;

/// The spec's `definitions`, ready to check values against.
#[derive(Debug)]
pub(crate) struct Schema {
    definitions: serde_json::Map<String, Value>,
}

/// Loads `specs/firecracker-api.yaml` from `$OCI2VM_SHARED` or `../shared` next to the
/// repository; prints why and returns None when it is absent (and fails under `CI=true`,
/// where the repository is cloned with `shared/` beside it).
pub(crate) fn shared_spec() -> Option<Value> {
    let root = std::env::var_os("OCI2VM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = root.join("specs/firecracker-api.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "firecracker API schema required under CI=true: {}: {e}",
                path.display()
            );
            eprintln!(
                "SKIPPED: firecracker API schema not found at {} ({e}); set OCI2VM_SHARED",
                path.display()
            );
            return None;
        }
    };
    match serde_norway::from_str::<Value>(&text) {
        Ok(v) => Some(v),
        Err(e) => panic!("{} is not valid YAML: {e}", path.display()),
    }
}

impl Schema {
    /// Takes the `definitions` of a Swagger 2.0 document.
    pub(crate) fn from_swagger(spec: &Value) -> Option<Schema> {
        let definitions = spec.get("definitions")?.as_object()?.clone();
        Some(Schema { definitions })
    }

    /// Every violation of definition `name` by `value`, as `path: problem` lines.
    pub(crate) fn check(&self, name: &str, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        match self.definitions.get(name) {
            Some(def) => self.node(def, value, "$", &mut errors),
            None => errors.push(format!("no definition {name}")),
        }
        errors
    }

    fn node(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match r
                .strip_prefix("#/definitions/")
                .and_then(|n| self.definitions.get(n))
            {
                Some(def) => self.node(def, value, path, errors),
                None => errors.push(format!("{path}: unresolvable $ref {r}")),
            }
            return;
        }
        if let Some(ty) = schema.get("type").and_then(Value::as_str) {
            let ok = match ty {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{path}: expected {ty}, got {value}"));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            let matches = allowed
                .iter()
                .any(|a| a == value || a.as_str().is_some_and(|s| value.as_str() == Some(s)));
            if !matches {
                errors.push(format!("{path}: {value} not in enum {allowed:?}"));
            }
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                if n < min {
                    errors.push(format!("{path}: {n} < minimum {min}"));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                if n > max {
                    errors.push(format!("{path}: {n} > maximum {max}"));
                }
            }
        }
        if let Some(obj) = value.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !obj.contains_key(r) {
                        errors.push(format!("{path}: required property {r} missing"));
                    }
                }
            }
            let open = schema.get("additionalProperties") == Some(&Value::Bool(true));
            for (k, v) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => self.node(sub, v, &format!("{path}.{k}"), errors),
                    None if open => {}
                    None => errors.push(format!("{path}: unknown property {k}")),
                }
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                self.node(items, v, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_catches_each_rule() {
        let spec = serde_json::json!({"definitions": {
            "A": {"type": "object", "required": ["n"], "properties": {
                "n": {"type": "integer", "minimum": 1, "maximum": 3},
                "e": {"type": "string", "enum": ["x", "y"]},
                "b": {"$ref": "#/definitions/B"},
                "l": {"type": "array", "items": {"type": "boolean"}}}},
            "B": {"type": "object", "additionalProperties": true}
        }});
        let s = Schema::from_swagger(&spec).expect("definitions");
        let ok = serde_json::json!({"n": 2, "e": "x", "b": {"any": 1}, "l": [true]});
        assert!(s.check("A", &ok).is_empty());
        let bad = serde_json::json!({"e": "z", "extra": 1, "l": [1], "b": 3});
        let errs = s.check("A", &bad);
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert_eq!(s.check("A", &serde_json::json!({"n": 0})).len(), 1);
        assert_eq!(s.check("A", &serde_json::json!({"n": 4})).len(), 1);
        assert_eq!(s.check("A", &serde_json::json!({"n": "1"})).len(), 1);
    }
}
