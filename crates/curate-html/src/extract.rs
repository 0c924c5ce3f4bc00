//! Main-content extraction: prune boilerplate, locate the content root, render text.
//!
//! The approach follows readability and trafilatura: elements that never carry content
//! (scripts, forms, media) and elements whose tag, ARIA role, class or id name page
//! furniture (navigation, sidebars, footers, cookie banners, sharing widgets) are pruned;
//! the content root is the document's declared main region when it holds a fair share of
//! the text, otherwise the element that collects the most paragraph text with few links;
//! link-dominated blocks inside it (menus, tag clouds) are left out of the output.

use crate::dom::{Data, Dom, Id, Node};

/// Extracts the main-content text of an HTML document: paragraphs separated by blank
/// lines, list items and table rows on their own lines, `pre` blocks verbatim, entities
/// decoded and other whitespace collapsed. Empty when the page has no content text.
pub fn extract(html: &str) -> String {
    let dom = Dom::parse(html);
    let mut ex = Extractor::new(&dom);
    ex.prune();
    let roots = ex.content_roots();
    ex.render(&roots)
}

/// Elements whose content is never main text.
const DROP_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "head", "iframe", "frame", "frameset", "object", "embed", "applet",
    "canvas", "svg", "math", "audio", "video", "picture", "map", "area", "button", "input", "select", "option",
    "optgroup", "textarea", "label", "datalist", "output", "progress", "meter", "dialog", "fieldset", "legend",
    "link", "meta", "source", "track", "param",
];

/// Elements that are page furniture by definition.
const SEMANTIC_FURNITURE_TAGS: &[&str] = &["nav", "aside", "footer", "menu"];

/// ARIA roles of page furniture.
const FURNITURE_ROLES: &[&str] = &[
    "navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "toolbar", "dialog",
    "alertdialog", "tablist",
];

/// Class/id fragments that name furniture wherever they appear in the attribute value.
const FURNITURE_SUBSTRINGS: &[&str] = &[
    "sidebar", "footer", "navbar", "navigation", "breadcrumb", "cookie", "consent", "advert", "newsletter",
    "pagination", "masthead", "skiplink", "skip-link", "social", "sponsor", "popup", "subscribe",
];

/// Class/id words (split at non-alphanumerics) that name furniture.
const FURNITURE_WORDS: &[&str] = &[
    "nav", "menu", "ad", "ads", "banner", "share", "sharing", "related", "promo", "widget", "toolbar", "topbar",
    "pager", "copyright", "gdpr", "modal", "overlay", "login", "signup",
];

/// Readability's class/id fragments that raise or lower a candidate's score.
const POSITIVE_HINTS: &[&str] =
    &["article", "body", "content", "entry", "hentry", "main", "page", "post", "text", "blog", "story"];
const NEGATIVE_HINTS: &[&str] = &[
    "hidden", "banner", "combx", "comment", "contact", "foot", "footnote", "masthead", "media", "meta", "outbrain",
    "promo", "related", "scroll", "share", "shoutbox", "sidebar", "skyscraper", "sponsor", "shopping", "tags",
    "tool", "widget",
];

/// Phrasing elements: never furniture on their own, and rendered without breaks.
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "img", "kbd", "mark", "q",
    "rp", "rt", "ruby", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt", "u", "var",
    "wbr", "del", "ins",
];

/// Share of link text above which a short block is a menu or link list (trafilatura's 0.8).
const LINK_BLOCK_DENSITY: f64 = 0.8;
/// Share of link text above which a block of many links is a link farm whatever its length.
const LINK_FARM_DENSITY: f64 = 0.9;
/// Links shorter than this (non-space characters) are "short": menu entries, tags, page numbers.
const SHORT_LINK_CHARS: usize = 10;

/// A main/article region is trusted when it holds at least this share of the page's text.
const MAIN_REGION_SHARE: f64 = 0.25;

/// Paragraph-like blocks shorter than this (non-space characters) do not vote for a root.
const MIN_SCORED_CHARS: usize = 25;

/// Whether, and how surely, an element is page furniture.
enum Furniture {
    No,
    /// By its tag or ARIA role.
    Declared,
    /// By its class or id, or being a form: could be a wrapper of the whole page.
    Named,
}

/// Separators between rendered pieces, weakest first; the strongest pending one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    None,
    Space,
    Cell,
    Line,
    Para,
}

struct Extractor<'a> {
    dom: &'a Dom,
    removed: Vec<bool>,
    /// Non-whitespace characters in the (unremoved part of the) subtree.
    chars: Vec<usize>,
    /// Of those, characters inside links.
    links: Vec<usize>,
    /// Commas in the subtree, readability's cheap signal of prose.
    commas: Vec<usize>,
    /// Links with text in the subtree.
    n_links: Vec<usize>,
    /// Of those, links shorter than [`SHORT_LINK_CHARS`].
    short_links: Vec<usize>,
    /// Headings (`h1`-`h6`) and code blocks (`pre`) in the subtree.
    anchors: Vec<usize>,
    /// Whether the node is the last unremoved element among its siblings.
    last_element: Vec<bool>,
    /// Unremoved nodes in document order.
    order: Vec<Id>,
    body: Id,
}

fn name_of(node: &Node) -> &str {
    node.html_name().unwrap_or("")
}

fn is_inline(name: &str) -> bool {
    INLINE_TAGS.contains(&name)
}

fn hidden(node: &Node) -> bool {
    if node.attr("hidden").is_some() || node.attr("aria-hidden").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return true;
    }
    node.attr("style").is_some_and(|s| {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        s.contains("display:none") || s.contains("visibility:hidden")
    })
}

/// Lower-cased `class` and `id` values, space separated.
fn class_and_id(node: &Node) -> String {
    let mut s = String::new();
    for attr in ["class", "id"] {
        if let Some(v) = node.attr(attr) {
            s.push_str(&v.to_ascii_lowercase());
            s.push(' ');
        }
    }
    s
}

fn is_main_region(node: &Node) -> bool {
    name_of(node) == "main" || node.attr("role").is_some_and(|r| r.trim().eq_ignore_ascii_case("main"))
}

impl<'a> Extractor<'a> {
    fn new(dom: &'a Dom) -> Self {
        let n = dom.nodes.len();
        let body = dom.nodes.iter().position(|node| name_of(node) == "body").unwrap_or(0);
        Extractor {
            dom,
            removed: vec![false; n],
            chars: vec![0; n],
            links: vec![0; n],
            commas: vec![0; n],
            n_links: vec![0; n],
            short_links: vec![0; n],
            anchors: vec![0; n],
            last_element: vec![false; n],
            order: Vec::new(),
            body,
        }
    }

    fn node(&self, id: Id) -> &'a Node {
        &self.dom.nodes[id]
    }

    /// Unremoved nodes under `root`, in document order.
    fn walk(&self, root: Id) -> Vec<Id> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if self.removed[id] {
                continue;
            }
            out.push(id);
            stack.extend(self.node(id).children.iter().rev());
        }
        out
    }

    /// Recomputes the text measures of every unremoved subtree.
    fn measure(&mut self) {
        self.order = self.walk(0);
        for v in [&mut self.chars, &mut self.links, &mut self.commas, &mut self.n_links, &mut self.short_links, &mut self.anchors] {
            v.iter_mut().for_each(|x| *x = 0);
        }
        self.last_element.iter_mut().for_each(|x| *x = false);
        for &id in &self.order {
            let last = self.node(id).children.iter().rev().find(|&&c| !self.removed[c] && matches!(self.node(c).data, Data::Element { .. }));
            if let Some(&last) = last {
                self.last_element[last] = true;
            }
        }
        // Reverse document order visits every node after all of its descendants.
        for &id in self.order.iter().rev() {
            let node = self.node(id);
            match &node.data {
                Data::Text(t) => {
                    self.chars[id] = t.chars().filter(|c| !c.is_whitespace()).count();
                    self.commas[id] = t.chars().filter(|&c| c == ',' || c == '，' || c == '、').count();
                }
                Data::Element { .. } if name_of(node) == "a" && self.chars[id] > 0 => {
                    // A link nested in a link counts once.
                    self.links[id] = self.chars[id];
                    self.n_links[id] = 1;
                    self.short_links[id] = usize::from(self.chars[id] < SHORT_LINK_CHARS);
                }
                Data::Element { .. } if matches!(name_of(node), "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "pre") => {
                    self.anchors[id] += 1;
                }
                _ => {}
            }
            if let Some(p) = node.parent {
                self.chars[p] += self.chars[id];
                self.links[p] += self.links[id];
                self.commas[p] += self.commas[id];
                self.n_links[p] += self.n_links[id];
                self.short_links[p] += self.short_links[id];
                self.anchors[p] += self.anchors[id];
            }
        }
    }

    fn link_density(&self, id: Id) -> f64 {
        match self.chars[id] {
            0 => 0.0,
            c => self.links[id] as f64 / c as f64,
        }
    }

    /// How an element declares itself page furniture; headers are furniture only outside
    /// an article or main region, where they are the page's masthead rather than a title.
    fn furniture(&self, node: &Node, in_article: bool) -> Furniture {
        let name = name_of(node);
        if SEMANTIC_FURNITURE_TAGS.contains(&name) || (name == "header" && !in_article) {
            return Furniture::Declared;
        }
        if is_inline(name) {
            return Furniture::No;
        }
        if node.attr("role").is_some_and(|r| FURNITURE_ROLES.contains(&r.trim().to_ascii_lowercase().as_str())) {
            return Furniture::Declared;
        }
        if name == "form" {
            return Furniture::Named;
        }
        let hints = class_and_id(node);
        let named = FURNITURE_SUBSTRINGS.iter().any(|s| hints.contains(s))
            || hints
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| FURNITURE_WORDS.contains(&w) || (w == "header" && !in_article));
        if named {
            Furniture::Named
        } else {
            Furniture::No
        }
    }

    /// Removes what never is content, then furniture. Tags and roles are taken at their
    /// word; a class, id or form that holds most of the page's text is a layout wrapper
    /// (`<div class="with-sidebar">`, an ASP.NET page form), not furniture.
    fn prune(&mut self) {
        for (id, node) in self.dom.nodes.iter().enumerate() {
            if matches!(node.data, Data::Element { .. }) && html_drop(node) {
                self.removed[id] = true;
            }
        }
        self.measure();
        let total = self.chars[self.body];
        let mut stack = vec![(self.body, false)];
        while let Some((id, in_article)) = stack.pop() {
            if self.removed[id] {
                continue;
            }
            let node = self.node(id);
            if matches!(node.data, Data::Element { .. }) && id != self.body {
                let drop = match self.furniture(node, in_article) {
                    Furniture::Declared => true,
                    Furniture::Named => self.chars[id] * 2 <= total,
                    Furniture::No => false,
                };
                if drop {
                    self.removed[id] = true;
                    continue;
                }
            }
            let in_article = in_article || name_of(node) == "article" || is_main_region(node);
            stack.extend(node.children.iter().rev().map(|&c| (c, in_article)));
        }
        self.measure();
    }

    /// The subtrees holding the main content, in document order; empty for a page with no text.
    fn content_roots(&self) -> Vec<Id> {
        let total = self.chars[self.body];
        if total == 0 {
            return Vec::new();
        }
        let enough = |id: Id| self.chars[id] as f64 >= MAIN_REGION_SHARE * total as f64;
        let elements = || self.order.iter().copied().filter(|&id| matches!(self.node(id).data, Data::Element { .. }));
        // First in document order among equals, so ties resolve the same way every run.
        let mut best_main: Option<Id> = None;
        for id in elements().filter(|&id| is_main_region(self.node(id))) {
            if best_main.is_none_or(|b| self.chars[id] > self.chars[b]) {
                best_main = Some(id);
            }
        }
        if let Some(m) = best_main.filter(|&m| enough(m)) {
            return vec![m];
        }
        let articles: Vec<Id> = elements().filter(|&id| name_of(self.node(id)) == "article" && self.chars[id] > 0).collect();
        if let [a] = articles[..] {
            if enough(a) {
                return vec![a];
            }
        }
        self.scored_roots().unwrap_or_else(|| vec![self.body])
    }

    /// Readability's candidate scoring: paragraph-like blocks vote for their ancestors,
    /// the best candidate is kept together with siblings that look like content too.
    fn scored_roots(&self) -> Option<Vec<Id>> {
        let mut score: Vec<Option<f64>> = vec![None; self.dom.nodes.len()];
        let mut touched = Vec::new();
        for &id in &self.order {
            let node = self.node(id);
            if !self.is_scored_block(node) || self.chars[id] < MIN_SCORED_CHARS {
                continue;
            }
            let vote = 1.0 + self.commas[id] as f64 + (self.chars[id] as f64 / 100.0).min(3.0);
            let mut ancestor = node.parent;
            for level in 0..5 {
                let Some(a) = ancestor.filter(|&a| matches!(self.node(a).data, Data::Element { .. })) else { break };
                let divider = match level {
                    0 => 1.0,
                    1 => 2.0,
                    l => l as f64 * 3.0,
                };
                let s = score[a].get_or_insert_with(|| {
                    touched.push(a);
                    self.initial_score(self.node(a))
                });
                *s += vote / divider;
                ancestor = self.node(a).parent;
            }
        }
        let finals = |id: Id| score[id].map(|s| s * (1.0 - self.link_density(id)));
        let mut top: Option<(Id, f64)> = None;
        for &id in self.order.iter().filter(|&&id| score[id].is_some()) {
            let s = finals(id).unwrap_or(0.0);
            if top.is_none_or(|(_, b)| s > b) {
                top = Some((id, s));
            }
        }
        let (top, top_score) = top?;
        let Some(parent) = self.node(top).parent else { return Some(vec![top]) };
        let threshold = (top_score * 0.2).max(10.0);
        let roots = self
            .node(parent)
            .children
            .iter()
            .copied()
            .filter(|&s| !self.removed[s])
            .filter(|&s| s == top || finals(s).is_some_and(|f| f >= threshold) || self.is_content_paragraph(s))
            .collect();
        Some(roots)
    }

    fn is_scored_block(&self, node: &Node) -> bool {
        match name_of(node) {
            "p" | "pre" | "td" | "blockquote" | "dd" | "li" => true,
            // A div of phrasing content only is a paragraph by another name.
            "div" => node.children.iter().all(|&c| {
                let child = self.node(c);
                self.removed[c] || !matches!(child.data, Data::Element { .. }) || is_inline(name_of(child))
            }),
            _ => false,
        }
    }

    fn initial_score(&self, node: &Node) -> f64 {
        let tag = match name_of(node) {
            "div" => 5.0,
            "pre" | "td" | "blockquote" => 3.0,
            "address" | "ol" | "ul" | "dl" | "dd" | "dt" | "li" | "form" => -3.0,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "th" => -5.0,
            _ => 0.0,
        };
        let hints = class_and_id(node);
        let mut weight = 0.0;
        if NEGATIVE_HINTS.iter().any(|h| hints.contains(h)) {
            weight -= 25.0;
        }
        if POSITIVE_HINTS.iter().any(|h| hints.contains(h)) {
            weight += 25.0;
        }
        tag + weight
    }

    /// A sibling paragraph worth keeping next to the top candidate: long with few links, or
    /// short, link-free and ending like a sentence.
    fn is_content_paragraph(&self, id: Id) -> bool {
        if name_of(self.node(id)) != "p" {
            return false;
        }
        let (len, density) = (self.chars[id], self.link_density(id));
        if len > 80 {
            return density < 0.25;
        }
        len > 0 && density == 0.0 && self.text_of(id).trim_end().ends_with('.')
    }

    fn text_of(&self, id: Id) -> String {
        self.walk(id)
            .into_iter()
            .filter_map(|n| match &self.node(n).data {
                Data::Text(t) => Some(&**t),
                _ => None,
            })
            .collect()
    }

    /// A link-dominated block below a content root, by trafilatura's tests: a short block
    /// (the bar is higher for the last block of its parent, where menus and "more" lists
    /// sit) that is mostly link text or mostly short links; a farm of many links of any
    /// length; a long table that is mostly links. A block holding a heading or a code block
    /// is a part of the content (a titled section, an API signature with linked types),
    /// never a link block.
    fn is_link_block(&self, id: Id, name: &str) -> bool {
        let (len, links, n) = (self.chars[id] as f64, self.links[id] as f64, self.n_links[id]);
        if n == 0 || self.anchors[id] > 0 {
            return false;
        }
        match name {
            "table" => len >= 200.0 && links > if len < 1000.0 { LINK_BLOCK_DENSITY } else { 0.5 } * len,
            "p" | "div" | "section" | "ul" | "ol" | "dl" | "menu" => {
                let last = self.last_element[id];
                let limit = match (name, last) {
                    ("p", true) => 60.0,
                    ("p", false) => 30.0,
                    (_, true) => 300.0,
                    (_, false) => 100.0,
                };
                if len < limit {
                    return links > LINK_BLOCK_DENSITY * len
                        || (n > 1 && self.short_links[id] as f64 > LINK_BLOCK_DENSITY * n as f64);
                }
                n > 4 && links > LINK_FARM_DENSITY * len && links < 100.0 * n as f64
            }
            _ => false,
        }
    }

    /// Renders the subtrees as text, leaving out link blocks.
    fn render(&self, roots: &[Id]) -> String {
        enum Step {
            Enter(Id),
            Exit(Id),
        }
        let mut w = Writer::default();
        for &root in roots {
            let mut stack = vec![Step::Enter(root)];
            let mut in_pre = 0usize;
            while let Some(step) = stack.pop() {
                match step {
                    Step::Enter(id) => {
                        if self.removed[id] {
                            continue;
                        }
                        let node = self.node(id);
                        match &node.data {
                            Data::Text(t) if in_pre > 0 => w.raw(t),
                            Data::Text(t) => w.text(t),
                            Data::Element { .. } => {
                                let name = name_of(node);
                                if id != root && self.is_link_block(id, name) {
                                    continue;
                                }
                                match name {
                                    "br" if in_pre > 0 => w.raw("\n"),
                                    "br" => w.brk(Break::Line),
                                    _ => {
                                        w.brk(block_break(name));
                                        if name == "li" {
                                            w.prefix = Some("- ");
                                        }
                                        if name == "pre" {
                                            in_pre += 1;
                                        }
                                        stack.push(Step::Exit(id));
                                        stack.extend(node.children.iter().rev().map(|&c| Step::Enter(c)));
                                    }
                                }
                            }
                            Data::Document | Data::Other => {}
                        }
                    }
                    Step::Exit(id) => {
                        let name = name_of(self.node(id));
                        if name == "pre" {
                            in_pre -= 1;
                        }
                        w.brk(if matches!(name, "td" | "th") { Break::Cell } else { block_break(name) });
                    }
                }
            }
            w.brk(Break::Para);
        }
        w.finish()
    }
}

fn html_drop(node: &Node) -> bool {
    match node.html_name() {
        Some(name) => DROP_TAGS.contains(&name) || hidden(node),
        // SVG and MathML carry drawing and formula markup, not prose.
        None => true,
    }
}

fn block_break(name: &str) -> Break {
    match name {
        "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "pre" | "table" | "blockquote" | "ul" | "ol" | "dl" | "hr"
        | "figure" | "article" | "main" | "section" | "header" | "address" | "details" => Break::Para,
        "div" | "li" | "dt" | "dd" | "tr" | "caption" | "figcaption" | "summary" | "center" | "body" | "html"
        | "tbody" | "thead" | "tfoot" => Break::Line,
        "td" | "th" => Break::Space,
        _ => Break::None,
    }
}

/// Accumulates output text, turning breaks into separators lazily so that no separator
/// is written before the first or after the last piece of text.
#[derive(Default)]
struct Writer {
    out: String,
    pending: Option<Break>,
    prefix: Option<&'static str>,
}

impl Writer {
    fn brk(&mut self, b: Break) {
        if b == Break::None {
            return;
        }
        self.pending = Some(self.pending.map_or(b, |p| p.max(b)));
    }

    fn start_piece(&mut self) {
        if !self.out.is_empty() {
            match self.pending.unwrap_or(Break::None) {
                Break::None => {}
                Break::Space => self.out.push(' '),
                Break::Cell => self.out.push_str(" | "),
                Break::Line => {
                    self.trim_end();
                    self.out.push('\n');
                }
                Break::Para => {
                    self.trim_end();
                    self.out.push_str("\n\n");
                }
            }
        }
        self.pending = None;
        if let Some(p) = self.prefix.take() {
            self.out.push_str(p);
        }
    }

    fn trim_end(&mut self) {
        let len = self.out.trim_end().len();
        self.out.truncate(len);
    }

    /// Text outside `pre`: whitespace runs become one space.
    fn text(&mut self, s: &str) {
        for c in s.chars() {
            if c.is_whitespace() {
                self.brk(Break::Space);
            } else {
                if self.pending.is_some() || self.prefix.is_some() {
                    self.start_piece();
                }
                self.out.push(c);
            }
        }
    }

    /// Text inside `pre`, kept as written apart from line-ending normalisation.
    fn raw(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if self.pending.is_some() || self.prefix.is_some() {
            // Leading blank lines of a block add nothing once it is separated from the last.
            if self.out.is_empty() || self.pending.is_some_and(|p| p >= Break::Line) {
                let trimmed = s.trim_start_matches(['\n', '\r']);
                if trimmed.is_empty() {
                    return;
                }
                self.start_piece();
                self.push_raw(trimmed);
                return;
            }
            self.start_piece();
        }
        self.push_raw(s);
    }

    fn push_raw(&mut self, s: &str) {
        if s.contains('\r') {
            self.out.push_str(&s.replace("\r\n", "\n").replace('\r', "\n"));
        } else {
            self.out.push_str(s);
        }
    }

    /// The text without surrounding whitespace (a leading code block loses the indentation
    /// of its first line, as it would in any trimmed field).
    fn finish(self) -> String {
        let text = self.out.trim();
        if text.len() == self.out.len() {
            self.out
        } else {
            text.to_string()
        }
    }
}
