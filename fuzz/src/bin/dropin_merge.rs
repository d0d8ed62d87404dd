//! A unit file and its drop-ins, separated by lines of `%%`, merged and
//! validated as the loader does.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let layers: Vec<supd::unit::Layer> = text
            .split("\n%%\n")
            .enumerate()
            .map(|(i, part)| supd::unit::Layer {
                path: format!("fuzz.yaml.d/{i}.yaml").into(),
                text: part.to_string(),
            })
            .collect();
        let _ = supd::unit::parse_layers("fuzz", &layers);
    });
}
