//! Whatever bytes arrive, the parser answers with a campaign or with diagnostics; it never panics
//! and never hangs.

use std::path::Path;

use proptest::prelude::*;

const VALID: &str = include_str!("../examples/ci-smoke.yaml");

fn no_files(path: &Path) -> Result<String, userinput::file::Error> {
    Err(userinput::file::Error::io(
        path,
        userinput::file::FileKind::INVENTORY,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no files in this test"),
    ))
}

fn parse(bytes: &[u8]) {
    let _ = scenarios::load_bytes(Path::new("fuzz.yaml"), bytes, &no_files);
}

/// YAML-flavoured fragments, so that random input reaches deep into the parser and validator.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("version: 1\n".to_owned()),
        Just("testbed:\n  hosts:\n    - name: a\n      address: 10.0.0.1\n".to_owned()),
        Just(
            "experiments:\n  - name: e\n    fault: {kind: process-kill}\n    duration: 1s\n"
                .to_owned()
        ),
        Just("  ".to_owned()),
        Just("- ".to_owned()),
        Just(": ".to_owned()),
        Just("&a ".to_owned()),
        Just("*a ".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\n".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("!!str ".to_owned()),
        Just("<<: ".to_owned()),
        "[a-z_]{1,8}: ",
        "[0-9a-z.%/]{1,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse(&bytes);
    }

    #[test]
    fn random_yaml_never_panics(parts in proptest::collection::vec(fragment(), 0..40)) {
        parse(parts.concat().as_bytes());
    }

    #[test]
    fn mutated_valid_campaigns_never_panic(cut in 0usize..VALID.len(), insert in "[ -~\n]{0,12}") {
        let mut text = VALID.as_bytes()[..cut].to_vec();
        text.extend_from_slice(insert.as_bytes());
        text.extend_from_slice(&VALID.as_bytes()[cut..]);
        parse(&text);
    }
}
