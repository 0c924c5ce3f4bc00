//! Exact outputs of the extractor on small pages, and properties on random input.

use curate_html::extract;
use proptest::prelude::*;

const ARTICLE_PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Ignored title</title><style>p { color: red }</style>
<script>var tracking = "script text";</script></head>
<body>
<header class="site-header"><a href="/">Example Site</a><p>Tagline of the site</p></header>
<nav><ul><li><a href="/a">Section A</a></li><li><a href="/b">Section B</a></li></ul></nav>
<div class="cookie-banner">We use cookies. <button>Accept</button></div>
<main>
  <article>
    <h1>Parsing   HTML</h1>
    <p>HTML parsers build a <em>tree</em> from
       tag soup, the way browsers do.</p>
    <ul><li>First point</li><li>Second <b>point</b></li></ul>
    <pre><code>fn main() {
    println!("hi");
}</code></pre>
    <table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
    <form><input value="typed"><label>Search</label></form>
  </article>
</main>
<aside class="sidebar"><h3>Related</h3><p>Other stories nobody asked for.</p></aside>
<footer><p>Copyright 2024 Example</p></footer>
</body></html>"#;

#[test]
fn keeps_the_article_and_drops_page_furniture() {
    assert_eq!(
        extract(ARTICLE_PAGE),
        "Parsing HTML\n\n\
         HTML parsers build a tree from tag soup, the way browsers do.\n\n\
         - First point\n\
         - Second point\n\n\
         fn main() {\n    println!(\"hi\");\n}\n\n\
         Name | Value\n\
         a | 1"
    );
}

#[test]
fn decodes_entities_and_normalises_whitespace() {
    let page = "<body><p>a &lt;b&gt; &amp;&nbsp;c &eacute;t&eacute; &#x263A; &#8212; &copy</p>\n\n<p>  second\tparagraph\r\n </p></body>";
    assert_eq!(extract(page), "a <b> & c été ☺ — ©\n\nsecond paragraph");
}

#[test]
fn recovers_from_malformed_markup_like_a_browser() {
    // Unclosed paragraphs close at the next <p> or <div>; misnested inline tags are repaired.
    let page = "<p>One<p>Two <b>bold <i>both</b> italic</i><div>Block</p> tail";
    assert_eq!(extract(page), "One\n\nTwo bold both italic\n\nBlock\n\ntail");
}

#[test]
fn pages_without_content_text_are_empty() {
    assert_eq!(extract(""), "");
    assert_eq!(extract("<html><head><title>t</title></head><body> \n </body></html>"), "");
    assert_eq!(extract("<nav><a href=/>Home</a></nav><script>alert(1)</script><footer>(c)</footer>"), "");
    assert_eq!(extract("<!-- only a comment --><svg><text>drawn</text></svg>"), "");
}

#[test]
fn scores_paragraph_text_above_link_lists_when_no_main_region_is_marked() {
    let page = r#"<body>
<div id="links"><a href="/1">Alpha link</a> <a href="/2">Beta link</a> <a href="/3">Gamma link</a>
<a href="/4">Delta link</a> <a href="/5">Epsilon link</a></div>
<div class="story">
<p>The first paragraph of the story is long enough to count, with commas, clauses, and detail.</p>
<p>The second paragraph continues the story, adding more words, more commas, and a conclusion.</p>
</div>
<div class="widget"><p>Subscribe to our list, please, now.</p></div>
</body>"#;
    assert_eq!(
        extract(page),
        "The first paragraph of the story is long enough to count, with commas, clauses, and detail.\n\n\
         The second paragraph continues the story, adding more words, more commas, and a conclusion."
    );
}

#[test]
fn drops_hidden_elements_and_link_dominated_blocks_inside_content() {
    let page = r#"<main>
<p>Visible text of the page body, which is what a reader sees.</p>
<p hidden>hidden attribute</p><div style="display: none">inline style</div><span aria-hidden="true">aria</span>
<ul class="tags"><li><a href="/t/1">tag one</a></li><li><a href="/t/2">tag two</a></li></ul>
<p>See <a href="/doc">the documentation</a> for more on this subject.</p>
</main>"#;
    assert_eq!(
        extract(page),
        "Visible text of the page body, which is what a reader sees.\n\n\
         See the documentation for more on this subject."
    );
}

#[test]
fn headings_and_code_blocks_made_of_links_are_content() {
    // API docs link every type name: the signature and the titled item stay, while a short
    // block of short links (a pager) goes.
    let page = r#"<main>
<div class="decl"><pre><a href="/f">parse</a>(<a href="/s">s</a>: &amp;<a href="/str">str</a>) -&gt; <a href="/v">Vec</a>&lt;<a href="/u8">u8</a>&gt;</pre></div>
<section><a href="/src">src</a><h3><a href="/impl">impl</a> <a href="/c">Clone</a> for <a href="/t">Tree</a></h3></section>
<p>Parses the input into bytes, returning them in order.</p>
<div><a href="/1">1</a> <a href="/2">2</a> <a href="/next">next</a></div>
</main>"#;
    assert_eq!(
        extract(page),
        "parse(s: &str) -> Vec<u8>\n\nsrc\n\nimpl Clone for Tree\n\nParses the input into bytes, returning them in order."
    );
}

#[test]
fn keeps_code_blocks_verbatim_including_highlighting_markup() {
    let page = "<main><p>Example:</p><pre>\n<span class=k>let</span> x = 1;\r\n\n  <span>x</span> + 1<br>done</pre></main>";
    assert_eq!(extract(page), "Example:\n\nlet x = 1;\n\n  x + 1\ndone");
}

#[test]
fn a_layout_wrapper_named_like_furniture_is_not_dropped() {
    // The only element holding the text has a sidebar-ish class: it is layout, not furniture.
    let page = r#"<body><div class="page with-sidebar"><p>All of the text lives here, in one wrapper.</p></div></body>"#;
    assert_eq!(extract(page), "All of the text lives here, in one wrapper.");
}

#[test]
fn headers_inside_articles_are_titles_not_mastheads() {
    let page = "<body><header>Site masthead</header><article><header><h1>Post title</h1></header>\
                <p>Post body text that is the content of this page.</p></article></body>";
    assert_eq!(extract(page), "Post title\n\nPost body text that is the content of this page.");
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 20_000;
    let page = format!("{}<p>deep</p>{}", "<div>".repeat(depth), "</div>".repeat(depth));
    assert_eq!(extract(&page), "deep");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let out = extract(&s);
        prop_assert_eq!(out.trim(), out.as_str());
    }

    #[test]
    fn arbitrary_tag_soup_never_panics_and_stays_tidy(
        parts in proptest::collection::vec(prop_oneof![
            Just("<p>".to_string()), Just("</p>".to_string()), Just("<div class=nav>".to_string()),
            Just("</div>".to_string()), Just("<pre>".to_string()), Just("</pre>".to_string()),
            Just("<table><tr><td>".to_string()), Just("</td><td>".to_string()), Just("</table>".to_string()),
            Just("<li>".to_string()), Just("<a href=x>".to_string()), Just("</a>".to_string()),
            Just("<br>".to_string()), Just("<main>".to_string()), Just("<script>".to_string()),
            Just("&amp;".to_string()), Just("&#0;".to_string()), Just("\r\n".to_string()),
            "[a-z ,.]{0,12}",
        ], 0..60)
    ) {
        let page: String = parts.concat();
        let out = extract(&page);
        prop_assert_eq!(out.trim(), out.as_str());
        // Outside pre blocks there are never more than one blank line in a row.
        if !page.contains("<pre>") {
            prop_assert!(!out.contains("\n\n\n"), "{:?}", out);
        }
    }
}
