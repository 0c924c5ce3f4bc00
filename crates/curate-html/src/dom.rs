//! A flat arena DOM built by html5ever's tree builder.
//!
//! Nodes live in one `Vec` and refer to each other by index, so dropping or walking a
//! pathologically deep document never recurses.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use html5ever::interface::{ElemName, ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::{parse_document, Attribute, LocalName, Namespace, ParseOpts, QualName};

/// Index of a node in [`Dom::nodes`].
pub type Id = usize;

/// What a node is.
pub enum Data {
    /// The document root (also used for template contents).
    Document,
    /// An element with its name and attributes.
    Element {
        /// Qualified name.
        name: QualName,
        /// Attributes in source order.
        attrs: Vec<Attribute>,
        /// Template contents fragment of a `<template>`.
        template: Option<Id>,
    },
    /// Character data (entities already decoded).
    Text(StrTendril),
    /// Comments, processing instructions: nothing the extractor reads.
    Other,
}

/// One node of the tree.
pub struct Node {
    /// Parent, `None` for the document and detached nodes.
    pub parent: Option<Id>,
    /// Children in document order.
    pub children: Vec<Id>,
    /// The node's payload.
    pub data: Data,
}

impl Node {
    fn new(data: Data) -> Self {
        Node { parent: None, children: Vec::new(), data }
    }

    /// Local name when the node is an HTML element.
    pub fn html_name(&self) -> Option<&str> {
        match &self.data {
            Data::Element { name, .. } if name.ns == html5ever::ns!(html) => Some(&name.local),
            _ => None,
        }
    }

    /// Value of attribute `attr` (no namespace), when present.
    pub fn attr(&self, attr: &str) -> Option<&str> {
        match &self.data {
            Data::Element { attrs, .. } => {
                attrs.iter().find(|a| a.name.ns.is_empty() && &*a.name.local == attr).map(|a| &*a.value)
            }
            _ => None,
        }
    }
}

/// A parsed document; node 0 is the document root.
pub struct Dom {
    /// All nodes ever created, detached ones included.
    pub nodes: Vec<Node>,
}

impl Dom {
    /// Parses `html` as a full document the way a browser would (HTML5 tree construction).
    pub fn parse(html: &str) -> Dom {
        let sink = Sink { nodes: RefCell::new(vec![Node::new(Data::Document)]) };
        parse_document(sink, ParseOpts::default()).one(html)
    }
}

/// The tree builder's handle on a node. It carries the element name because the builder
/// asks for names of the whole open-element stack at nearly every tag: answering from the
/// handle costs neither a `RefCell` borrow nor a clone.
#[derive(Clone)]
pub struct Handle(Rc<(Id, QualName)>);

impl Handle {
    fn id(&self) -> Id {
        self.0 .0
    }
}

/// Element name handed back to the tree builder, borrowed from its handle.
pub struct Name<'a>(&'a QualName);

impl std::fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &*self.0.local)
    }
}

impl ElemName for Name<'_> {
    fn ns(&self) -> &Namespace {
        &self.0.ns
    }

    fn local_name(&self) -> &LocalName {
        &self.0.local
    }
}

struct Sink {
    nodes: RefCell<Vec<Node>>,
}

fn unnamed() -> QualName {
    QualName::new(None, html5ever::ns!(), LocalName::from(""))
}

impl Sink {
    fn push(&self, data: Data) -> Id {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node::new(data));
        nodes.len() - 1
    }

    fn handle(id: Id, name: QualName) -> Handle {
        Handle(Rc::new((id, name)))
    }

    fn detach(nodes: &mut [Node], id: Id) {
        if let Some(parent) = nodes[id].parent.take() {
            nodes[parent].children.retain(|&c| c != id);
        }
    }

    /// Inserts `child` into `parent` at `index`, merging text with a text node just before it.
    fn insert(&self, parent: Id, index: usize, child: NodeOrText<Handle>) {
        let mut nodes = self.nodes.borrow_mut();
        match child {
            NodeOrText::AppendText(text) => {
                if let Some(&prev) = index.checked_sub(1).and_then(|i| nodes[parent].children.get(i)) {
                    if let Data::Text(t) = &mut nodes[prev].data {
                        t.push_tendril(&text);
                        return;
                    }
                }
                nodes.push(Node::new(Data::Text(text)));
                let id = nodes.len() - 1;
                nodes[id].parent = Some(parent);
                nodes[parent].children.insert(index, id);
            }
            NodeOrText::AppendNode(handle) => {
                let id = handle.id();
                Self::detach(&mut nodes, id);
                let index = index.min(nodes[parent].children.len());
                nodes[id].parent = Some(parent);
                nodes[parent].children.insert(index, id);
            }
        }
    }
}

impl TreeSink for Sink {
    type Handle = Handle;
    type Output = Dom;
    type ElemName<'a> = Name<'a>;

    fn finish(self) -> Dom {
        Dom { nodes: self.nodes.into_inner() }
    }

    // Browsers recover from every parse error; so does the extractor.
    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> Handle {
        Self::handle(0, unnamed())
    }

    fn elem_name<'a>(&'a self, target: &'a Handle) -> Name<'a> {
        Name(&target.0 .1)
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> Handle {
        let template = flags.template.then(|| self.push(Data::Document));
        let id = self.push(Data::Element { name: name.clone(), attrs, template });
        Self::handle(id, name)
    }

    fn create_comment(&self, _text: StrTendril) -> Handle {
        Self::handle(self.push(Data::Other), unnamed())
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> Handle {
        Self::handle(self.push(Data::Other), unnamed())
    }

    fn append(&self, parent: &Handle, child: NodeOrText<Handle>) {
        let len = self.nodes.borrow()[parent.id()].children.len();
        self.insert(parent.id(), len, child);
    }

    fn append_based_on_parent_node(&self, element: &Handle, prev_element: &Handle, child: NodeOrText<Handle>) {
        if self.nodes.borrow()[element.id()].parent.is_some() {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _name: StrTendril, _public_id: StrTendril, _system_id: StrTendril) {}

    fn get_template_contents(&self, target: &Handle) -> Handle {
        match &self.nodes.borrow()[target.id()].data {
            Data::Element { template: Some(t), .. } => Self::handle(*t, unnamed()),
            _ => target.clone(),
        }
    }

    fn same_node(&self, x: &Handle, y: &Handle) -> bool {
        x.id() == y.id()
    }

    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &Handle, new_node: NodeOrText<Handle>) {
        let sibling = sibling.id();
        let place = {
            let nodes = self.nodes.borrow();
            nodes[sibling]
                .parent
                .map(|p| (p, nodes[p].children.iter().position(|&c| c == sibling).unwrap_or(nodes[p].children.len())))
        };
        // The tree builder only names siblings that have a parent.
        if let Some((parent, index)) = place {
            self.insert(parent, index, new_node);
        }
    }

    fn add_attrs_if_missing(&self, target: &Handle, new: Vec<Attribute>) {
        if let Data::Element { attrs, .. } = &mut self.nodes.borrow_mut()[target.id()].data {
            for attr in new {
                if !attrs.iter().any(|a| a.name == attr.name) {
                    attrs.push(attr);
                }
            }
        }
    }

    fn remove_from_parent(&self, target: &Handle) {
        Self::detach(&mut self.nodes.borrow_mut(), target.id());
    }

    fn reparent_children(&self, node: &Handle, new_parent: &Handle) {
        let mut nodes = self.nodes.borrow_mut();
        let children = std::mem::take(&mut nodes[node.id()].children);
        for &c in &children {
            nodes[c].parent = Some(new_parent.id());
        }
        nodes[new_parent.id()].children.extend(children);
    }
}
