//! Hand-made documents with the outputs datatrove 0.10.1 (spaCy 3.8.18) gives for them:
//! reasons, signal values and C4's rewritten text.

use curate_text::{c4, fineweb_quality, gopher_quality, gopher_repetition, Doc};

const PROSE: &str = "The quick brown fox jumps over the lazy dog and runs to the river. \
It is a sunny day, and the children play with their kites in the park. ";

fn rule(d: &curate_text::Decision) -> Option<String> {
    d.reason().map(|r| r.to_string())
}

/// (gopher_repetition, gopher_quality, c4 default, c4 without terminal-punct rule, fineweb)
fn run(text: &str) -> [Option<String>; 5] {
    let doc = Doc::new(text);
    let c4_np = c4::Params {
        filter_no_terminal_punct: false,
        ..Default::default()
    };
    [
        rule(&gopher_repetition::evaluate(&doc, &Default::default()).1),
        rule(&gopher_quality::evaluate(&doc, &Default::default()).1),
        rule(&c4::evaluate(&doc, &Default::default()).decision),
        rule(&c4::evaluate(&doc, &c4_np).decision),
        rule(&fineweb_quality::evaluate(&doc, &Default::default()).1),
    ]
}

fn s(x: &str) -> Option<String> {
    Some(x.to_owned())
}

#[test]
fn reasons_match_datatrove() {
    let bullets: String = (0..12)
        .map(|i| format!("- item number {i} is here with the words and more"))
        .collect::<Vec<_>>()
        .join("\n");
    let fw_list: String = (0..20)
        .map(|i| format!("word{i} and more"))
        .collect::<Vec<_>>()
        .join("\n");
    let cases: Vec<(String, [Option<String>; 5])> = vec![
        (
            "Hello world.".into(),
            [
                s("gopher_repetition:top_2_gram"),
                s("gopher_quality:gopher_short_doc"),
                s("c4_quality:too_few_sentences"),
                s("c4_quality:too_few_sentences"),
                s("fineweb_quality:short_line_ratio"),
            ],
        ),
        (
            PROSE.repeat(4),
            [
                s("gopher_repetition:duplicated_5_n_grams"),
                None,
                None,
                None,
                s("fineweb_quality:line_punct_ratio"),
            ],
        ),
        (
            format!("{PROSE}#tag #news #fun ").repeat(3),
            [
                s("gopher_repetition:duplicated_5_n_grams"),
                None,
                s("c4_quality:too_few_sentences"),
                None,
                s("fineweb_quality:line_punct_ratio"),
            ],
        ),
        (
            bullets,
            [
                s("gopher_repetition:top_3_gram"),
                s("gopher_quality:gopher_too_many_bullets"),
                s("c4_quality:too_few_sentences"),
                None,
                s("fineweb_quality:line_punct_ratio"),
            ],
        ),
        (
            "Quick brown foxes jump over lazy dogs. ".repeat(12),
            [
                s("gopher_repetition:top_2_gram"),
                s("gopher_quality:gopher_enough_stop_words"),
                None,
                None,
                s("fineweb_quality:line_punct_ratio"),
            ],
        ),
        (
            [
                &["This is the line that ends with dots..."; 4][..],
                &[PROSE; 2][..],
            ]
            .concat()
            .join("\n"),
            [
                s("gopher_repetition:dup_line_frac"),
                s("gopher_quality:gopher_too_many_end_ellipsis"),
                s("c4_quality:too_few_sentences"),
                None,
                s("fineweb_quality:char_dup_ratio"),
            ],
        ),
        (
            [&["Same line again and again."; 5][..], &[PROSE][..]]
                .concat()
                .join("\n"),
            [
                s("gopher_repetition:dup_line_frac"),
                None,
                None,
                None,
                s("fineweb_quality:short_line_ratio"),
            ],
        ),
        (
            [PROSE, PROSE, PROSE, "Another paragraph here."].join("\n\n"),
            [
                s("gopher_repetition:dup_para_frac"),
                None,
                None,
                None,
                s("fineweb_quality:char_dup_ratio"),
            ],
        ),
        (
            "First line is fine and complete.\nLorem ipsum dolor sit amet, dolor.\n".into(),
            [
                s("gopher_repetition:top_3_gram"),
                s("gopher_quality:gopher_short_doc"),
                s("c4_quality:lorem_ipsum"),
                s("c4_quality:lorem_ipsum"),
                None,
            ],
        ),
        (
            "A line with a { bracket in it.\nOther line.\n".into(),
            [
                s("gopher_repetition:top_3_gram"),
                s("gopher_quality:gopher_short_doc"),
                s("c4_quality:curly_bracket"),
                s("c4_quality:curly_bracket"),
                s("fineweb_quality:short_line_ratio"),
            ],
        ),
        (
            fw_list,
            [
                s("gopher_repetition:top_2_gram"),
                s("gopher_quality:gopher_enough_stop_words"),
                s("c4_quality:too_few_sentences"),
                None,
                s("fineweb_quality:line_punct_ratio"),
            ],
        ),
        (
            "".into(),
            [
                s("gopher_repetition:empty"),
                s("gopher_quality:gopher_short_doc"),
                s("c4_quality:too_few_sentences"),
                s("c4_quality:too_few_sentences"),
                s("fineweb_quality:empty"),
            ],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(run(&text), want, "text: {text:?}");
    }
}

#[test]
fn gopher_quality_signals_match_datatrove() {
    let text = PROSE.repeat(4);
    let sig = gopher_quality::signals(&Doc::new(&text), &Default::default());
    assert_eq!(sig.n_words, 128);
    assert_eq!(sig.n_non_symbol_words, 116);
    assert_eq!(sig.avg_word_length, 3.6551724137931036);
    assert_eq!(sig.alpha_words_ratio, 0.90625);
    assert_eq!(sig.stop_words, 4);
    assert_eq!(sig.hash_ratio, 0.0);
    assert_eq!(sig.bullet_lines_ratio, 0.0);

    let sig = gopher_quality::signals(&Doc::new("Hello world."), &Default::default());
    assert_eq!(
        (sig.n_words, sig.n_non_symbol_words, sig.avg_word_length),
        (3, 2, 5.0)
    );
    assert_eq!(sig.alpha_words_ratio, 2.0 / 3.0);
}

#[test]
fn gopher_repetition_signals() {
    // Three identical paragraphs of 137 chars and one of 23, separated by "\n\n".
    let text = [PROSE, PROSE, PROSE, "Another paragraph here."].join("\n\n");
    let sig = gopher_repetition::signals(&Doc::new(&text), &Default::default());
    let len = text.chars().count() as f64;
    assert_eq!(sig.dup_para_frac, 2.0 / 4.0);
    assert_eq!(sig.dup_para_char_frac, 2.0 * PROSE.len() as f64 / len);
    // Lines: the same 4 pieces (blank lines collapse in `\n+`).
    assert_eq!(sig.dup_line_frac, 2.0 / 4.0);
    // Values printed by datatrove's find_top_duplicate / find_all_duplicate.
    assert_eq!(
        sig.top_n_gram_char_frac,
        [
            Some(0.060948081264108354),
            Some(0.10158013544018059),
            Some(0.12866817155756208)
        ]
    );
    assert_eq!(
        sig.dup_n_gram_char_frac,
        [
            0.46952595936794583,
            0.46952595936794583,
            0.4898419864559819,
            0.49209932279909707,
            0.4898419864559819,
            0.46952595936794583
        ]
    );
}

#[test]
fn c4_rewrites_like_datatrove() {
    let text = "Title\nThis is a good sentence. And another one! [1]\nClick here\n\
We use cookies to track you. Terms of use apply.\nDo you like JavaScript? I do.\nShort line.\n\
The end of the story is near. It was fun. Really fun? Yes!\n";
    let doc = Doc::new(text);
    let out = c4::evaluate(
        &doc,
        &c4::Params {
            filter_no_terminal_punct: false,
            ..Default::default()
        },
    );
    assert!(out.decision.is_keep());
    assert_eq!(out.text, "This is a good sentence. And another one! \nThe end of the story is near. It was fun. Really fun? Yes!");
    let sig = &out.signals;
    assert_eq!(
        (
            sig.lines_total,
            sig.lines_too_few_words,
            sig.lines_policy,
            sig.lines_javascript,
            sig.lines_kept,
            sig.num_sentences
        ),
        (7, 3, 1, 1, 2, 6)
    );
    // With the terminal punctuation rule the "[1]" line fails too: the line is stripped
    // before the citation is removed, so it ends in "! ".
    let out = c4::evaluate(&doc, &Default::default());
    assert_eq!(
        out.decision.reason().map(|r| r.to_string()).as_deref(),
        Some("c4_quality:too_few_sentences")
    );
    assert_eq!(out.signals.lines_no_terminal_punct, 3);
}

#[test]
fn c4_sentence_mode_joins_with_spaces() {
    let text = "One sentence here is fine. Two sentences here are fine. Three is fine too! Four is ok? Five is great. six";
    let p = c4::Params {
        split_paragraph: false,
        ..Default::default()
    };
    let out = c4::evaluate(&Doc::new(text), &p);
    assert!(out.decision.is_keep());
    assert_eq!(out.text, "One sentence here is fine. Two sentences here are fine. Three is fine too! Four is ok? Five is great.");
}

#[test]
fn params_deserialize_with_defaults_and_reject_unknown_fields() {
    let p: gopher_quality::Params =
        serde_json::from_str(r#"{"min_doc_words": 10, "stop_words": ["a"]}"#).unwrap();
    assert_eq!(p.min_doc_words, Some(10));
    assert_eq!(p.max_doc_words, Some(100_000));
    assert!(serde_json::from_str::<c4::Params>(r#"{"nope": 1}"#).is_err());
    let r: gopher_repetition::Params =
        serde_json::from_str(r#"{"top_n_grams": [{"n": 2, "max_frac": 0.5}]}"#).unwrap();
    assert_eq!(r.top_n_grams.len(), 1);
    assert_eq!(r.dup_n_grams.len(), 6);
    let f: fineweb_quality::Params = serde_json::from_str("{}").unwrap();
    assert_eq!(f.short_line_length, 30);
}

#[test]
fn repetition_check_agrees_with_evaluate() {
    let p = gopher_repetition::Params::default();
    for text in [
        PROSE.repeat(4),
        [PROSE, PROSE, PROSE, "Another paragraph here."].join("\n\n"),
        "Hello world.".to_owned(),
        String::new(),
        format!(
            "{PROSE}\n{}",
            "one two three four five six seven ".repeat(3)
        ),
    ] {
        let doc = Doc::new(&text);
        assert_eq!(
            gopher_repetition::check(&doc, &p),
            gopher_repetition::evaluate(&doc, &p).1,
            "{text:?}"
        );
    }
}

#[test]
fn params_schemas_document_every_field() {
    let schemas = [
        serde_json::to_value(schemars::schema_for!(gopher_quality::Params)).unwrap(),
        serde_json::to_value(schemars::schema_for!(gopher_repetition::Params)).unwrap(),
        serde_json::to_value(schemars::schema_for!(c4::Params)).unwrap(),
        serde_json::to_value(schemars::schema_for!(fineweb_quality::Params)).unwrap(),
    ];
    for schema in schemas {
        let props = schema["properties"].as_object().expect("object schema");
        assert!(!props.is_empty());
        for (name, prop) in props {
            assert!(
                prop.get("description").is_some(),
                "{name} lacks a description in {schema}"
            );
        }
        assert_eq!(
            schema["additionalProperties"],
            serde_json::Value::Bool(false)
        );
    }
}
