//! The template layer: any text as a template and, after the first NUL byte, any text as a `when:`
//! expression, rendered against a small context, with the name analyses the checks run on them. Must
//! return a rendering or an error, never panic nor overflow the stack.
#![no_main]

use apim_provision::model::template::Templates;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(Templates::new)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (src, expr) = text.split_once('\0').unwrap_or((text, "x"));
    let t = templates();
    let ctx = minijinja::Value::from_serialize(serde_json::json!({
        "x": 1, "s": "a,b", "l": [1, "two", {"k": null}], "m": {"a": {"b": [true]}},
        "groups": {"all": ["h1", "h2"]}, "inventory_hostname": "h1",
    }));
    let _ = t.render_str(src, &ctx);
    let _ = t.truth(expr, &ctx);
    let v = serde_json::json!({"a": src, "b": [src]});
    let _ = t.render_value(&v, &ctx);
    let _ = t.names_in(&v);
    let _ = t.guarded_in(&v);
    let _ = t.names_in_expr(expr);
    let _ = t.guarded_in_expr(expr);
});
