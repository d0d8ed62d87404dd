//! One unit file's text through the loader's parser and validator: any
//! input must give a unit or an error, never a panic or a stall.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = supd::unit::parse_unit("fuzz", std::path::Path::new("fuzz.yaml"), text);
        }
    });
}
