//! The OpenAPI 3.1 document, built from the same operation table as the router. Body
//! and response schemas come from the Rust types (schemars, JSON Schema 2020-12, which
//! OpenAPI 3.1 uses as is).

use axum::routing::MethodRouter;
use curate_registry::Scope;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of a request or response body of type `T`.
pub(crate) fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// A parameter of an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Param {
    name: &'static str,
    at: &'static str,
    doc: &'static str,
    required: bool,
    /// For integers: the largest value the server takes (the least is 1).
    integer: Option<i64>,
    /// The values a string takes, when they are few.
    values: &'static [&'static str],
}

impl Param {
    pub(crate) const fn path(name: &'static str, doc: &'static str) -> Self {
        Param { name, at: "path", doc, required: true, integer: None, values: &[] }
    }
    pub(crate) const fn path_int(name: &'static str, doc: &'static str) -> Self {
        Param { name, at: "path", doc, required: true, integer: Some(i64::MAX), values: &[] }
    }
    pub(crate) const fn query(name: &'static str, doc: &'static str) -> Self {
        Param { name, at: "query", doc, required: false, integer: None, values: &[] }
    }
    pub(crate) const fn query_required(name: &'static str, doc: &'static str) -> Self {
        Param { name, at: "query", doc, required: true, integer: None, values: &[] }
    }
    pub(crate) const fn query_int(name: &'static str, doc: &'static str, max: i64) -> Self {
        Param { name, at: "query", doc, required: false, integer: Some(max), values: &[] }
    }
    pub(crate) const fn query_enum(name: &'static str, doc: &'static str, values: &'static [&'static str]) -> Self {
        Param { name, at: "query", doc, required: false, integer: None, values }
    }
    pub(crate) const fn header(name: &'static str, doc: &'static str) -> Self {
        Param { name, at: "header", doc, required: false, integer: None, values: &[] }
    }
}

/// How an operation answers on success.
enum Answer {
    Json(u16, SchemaFn),
    NoContent,
    Text,
    EventStream,
}

/// One operation: its route, and what the document says of it.
pub(crate) struct Operation<S> {
    method: &'static str,
    pub(crate) path: &'static str,
    id: &'static str,
    summary: &'static str,
    scope: Option<Scope>,
    params: Vec<Param>,
    body: Option<SchemaFn>,
    answers: Vec<Answer>,
    errors: Vec<u16>,
    pub(crate) route: MethodRouter<S>,
}

impl<S> Operation<S> {
    pub(crate) fn new(method: &'static str, path: &'static str, id: &'static str, summary: &'static str, scope: Option<Scope>, route: MethodRouter<S>) -> Self {
        Operation { method, path, id, summary, scope, params: Vec::new(), body: None, answers: Vec::new(), errors: Vec::new(), route }
    }
    pub(crate) fn param(mut self, p: Param) -> Self {
        self.params.push(p);
        self
    }
    pub(crate) fn body(mut self, f: SchemaFn) -> Self {
        self.body = Some(f);
        self
    }
    pub(crate) fn ok(mut self, status: u16, f: SchemaFn) -> Self {
        self.answers.push(Answer::Json(status, f));
        self
    }
    pub(crate) fn no_content(mut self) -> Self {
        self.answers.push(Answer::NoContent);
        self
    }
    pub(crate) fn text(mut self) -> Self {
        self.answers.push(Answer::Text);
        self
    }
    pub(crate) fn event_stream(mut self) -> Self {
        self.answers.push(Answer::EventStream);
        self
    }
    pub(crate) fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "An error (RFC 9457 problem details).",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string", "description": "What went wrong and what to do about it."},
            "errors": {"type": "array", "items": {"type": "string"}, "description": "Each validation problem, located."}
        }
    })
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

/// The OpenAPI 3.1 document of `ops`.
pub(crate) fn document<S>(ops: &[Operation<S>]) -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = SchemaGenerator::new(settings);
    let mut paths: Map<String, Value> = Map::new();
    for op in ops {
        let mut responses = Map::new();
        for a in &op.answers {
            let (status, v) = match a {
                Answer::Json(status, f) => (*status, json!({ "description": "OK", "content": { "application/json": { "schema": f(&mut g) } } })),
                Answer::NoContent => (204, json!({ "description": "No content" })),
                Answer::Text => (200, json!({ "description": "OK", "content": { "text/plain": { "schema": { "type": "string" } } } })),
                Answer::EventStream => (200, json!({ "description": "Server-sent events", "content": { "text/event-stream": { "schema": {
                    "type": "object",
                    "description": "One event: `id` (resume after it with Last-Event-ID), `event` (state, progress or task), `data` (JSON).",
                    "properties": { "id": {"type": "string"}, "event": {"type": "string"}, "data": {"type": "string", "contentMediaType": "application/json"}, "retry": {"type": "integer"} }
                } } } })),
            };
            responses.insert(status.to_string(), v);
        }
        if op.scope.is_some() {
            responses.insert("401".into(), problem("No token, or an unknown or revoked one."));
            responses.insert("403".into(), problem("The token's scope does not allow this call."));
        }
        for e in &op.errors {
            responses.insert(e.to_string(), problem("The request cannot be carried out; `detail` says why."));
        }
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|p| json!({ "name": p.name, "in": p.at, "required": p.required, "description": p.doc,
                             "schema": match p.integer {
                                 Some(max) => json!({"type": "integer", "minimum": 1, "maximum": max}),
                                 // Values cannot be empty; an idempotency key has at most 255 characters.
                                 None if p.at == "header" => json!({"type": "string", "minLength": 1, "maxLength": 255}),
                                 None if !p.values.is_empty() => json!({"type": "string", "enum": p.values}),
                                 None => json!({"type": "string", "minLength": 1}),
                             } }))
            .collect();
        let mut o = json!({ "operationId": op.id, "summary": op.summary, "responses": responses });
        if !params.is_empty() {
            o["parameters"] = params.into();
        }
        if let Some(f) = op.body {
            o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": f(&mut g) } } });
        }
        match op.scope {
            Some(scope) => {
                o["security"] = json!([{ "bearer": [] }]);
                o["description"] = format!("Needs a token with scope `{}` or above.", scope.as_str()).into();
            }
            None => o["security"] = json!([]),
        }
        let entry = paths.entry(op.path.to_string()).or_insert_with(|| json!({}));
        entry[op.method] = o;
    }
    let mut schemas: Map<String, Value> = g.take_definitions(true);
    schemas.insert("Problem".into(), problem_schema());
    json!({
        "openapi": "3.1.0",
        "info": { "title": "curate", "version": env!("CARGO_PKG_VERSION"),
                  "description": "The curate control plane: pipelines, runs, datasets and versions, lineage, workers and the run queue." },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "A token from `curate tokens create --scope read|run|admin --name NAME`." } }
        },
        "security": [{ "bearer": [] }],
    })
}
