//! Main-content text extraction from HTML pages: navigation, headers, footers, sidebars,
//! scripts, forms and cookie banners dropped; paragraphs, headings, lists, tables and code
//! blocks kept as text.

mod dom;
mod extract;

pub use extract::extract;
