//! Truncated and corrupted model files are errors, never panics.

use std::path::{Path, PathBuf};

use curate_fasttext::{FastText, FastTextError};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every cut in the first 3 KB (header, dictionary, start of the matrices), then a spread of
/// cuts through the rest, and every cut in the last 64 bytes.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    (0..len.min(3072)).chain((3072..len).step_by(331)).chain(len.saturating_sub(64)..len)
}

#[test]
fn truncated_models_are_errors() {
    for name in ["softmax.bin", "hs.bin", "ova.bin", "softmax.ftz", "hs.ftz", "topics.ftz"] {
        let bytes = read(name);
        assert!(FastText::read(bytes.as_slice()).is_ok(), "{name} itself must load");
        let mut checked = 0;
        for n in cuts(bytes.len()) {
            match FastText::read(&bytes[..n]) {
                Err(FastTextError::Truncated { offset, .. }) => {
                    assert!(offset <= n as u64, "{name} cut at {n}: {offset}")
                }
                Err(e) => panic!("{name} cut at {n}: expected a truncation error, got {e}"),
                Ok(_) => panic!("{name} cut at {n} of {} loaded", bytes.len()),
            }
            checked += 1;
        }
        assert!(checked > 3000, "{name}: {checked} cuts");
    }
}

#[test]
fn truncation_error_names_file_and_offset() {
    let bytes = read("softmax.ftz");
    let dir = std::env::temp_dir().join(format!("curate-fasttext-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cut.ftz");
    std::fs::write(&path, &bytes[..1000]).unwrap();
    let msg = FastText::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(msg.contains("cut.ftz") && msg.contains("truncated at byte 1000"), "{msg}");

    let missing = FastText::load(Path::new("/nonexistent/model.bin")).unwrap_err().to_string();
    assert!(missing.contains("/nonexistent/model.bin"), "{missing}");
}

#[test]
fn bad_magic_and_version() {
    let mut bytes = read("ova.bin");
    bytes[0] ^= 0xFF;
    let e = FastText::read(bytes.as_slice()).unwrap_err();
    assert!(matches!(e, FastTextError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("not a fastText model"), "{e}");

    let mut bytes = read("ova.bin");
    bytes[4..8].copy_from_slice(&13i32.to_le_bytes());
    let e = FastText::read(bytes.as_slice()).unwrap_err();
    assert!(matches!(e, FastTextError::UnsupportedVersion(13)), "{e}");
    assert!(FastText::read(&b"hello"[..]).is_err());
}

#[test]
fn word_vector_models_are_refused() {
    let mut bytes = read("ova.bin");
    // args: dim ws epoch minCount neg wordNgrams loss model ...; model sits at byte 8 + 7 * 4.
    bytes[36..40].copy_from_slice(&2i32.to_le_bytes());
    let e = FastText::read(bytes.as_slice()).unwrap_err();
    assert!(matches!(e, FastTextError::Unsupported(_)), "{e}");
}

/// Corrupting any header or dictionary byte, or a spread of matrix bytes, must give either
/// a model or an error; when a model loads, predicting with it must not panic either.
#[test]
fn corrupted_models_never_panic() {
    for name in ["softmax.bin", "hs.bin", "softmax.ftz", "topics.ftz"] {
        let original = read(name);
        let positions = (0..original.len().min(300)).chain((300..original.len()).step_by(4001));
        for pos in positions {
            for value in [0x00u8, 0xFF, original[pos].wrapping_add(1)] {
                if value == original[pos] {
                    continue;
                }
                let mut bytes = original.clone();
                bytes[pos] = value;
                if let Ok(model) = FastText::read(bytes.as_slice()) {
                    let mut p = model.predictor();
                    for text in ["", "hello world", "Grüße aus Köln </s> x", "日本語のテキスト"] {
                        let out = p.predict(text, usize::MAX, 0.0);
                        assert!(out.iter().all(|x| x.label < model.labels().len()));
                    }
                }
            }
        }
    }
}
