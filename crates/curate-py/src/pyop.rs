//! Python functions as operators: each batch crosses to Python and back through the Arrow
//! C Data interface (its buffers are shared, not copied), under the GIL only while Python
//! runs.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_data::ArrayData;
use arrow_pyarrow::{FromPyArrow, ToPyArrow};
use arrow_schema::{DataType, Field, Schema};
use curate_core::operator::{BuildContext, Columns, OpDescriptor, OpError, OpKind, OpOutput, Operator, ParamError, Verdicts};
use pyo3::prelude::*;

/// A Python function registered as an operator, as `curate.map_batches` describes it.
#[derive(Clone)]
pub(crate) struct PyOpDef {
    name: String,
    version: String,
    /// Hash of the function's source (and version): a changed function recomputes.
    content_key: String,
    writes: Vec<(String, DataType)>,
    /// `curate`'s wrapper of the function: takes a `pyarrow.RecordBatch`, returns
    /// `(kind, value)` with kind `same`, `mask`, `reasons` or `columns`.
    call: Arc<Py<PyAny>>,
}

impl PyOpDef {
    /// Reads the attributes of a `curate.MapBatches`.
    pub(crate) fn extract(op: &Bound<'_, PyAny>) -> PyResult<Self> {
        let writes = op
            .getattr("writes")?
            .try_iter()?
            .map(|item| {
                let (name, ty): (String, Bound<'_, PyAny>) = item?.extract()?;
                Ok((name, DataType::from_pyarrow_bound(&ty)?))
            })
            .collect::<PyResult<_>>()?;
        Ok(PyOpDef {
            name: op.getattr("name")?.extract()?,
            version: op.getattr("version")?.extract()?,
            content_key: op.getattr("content_key")?.extract()?,
            writes,
            call: Arc::new(op.getattr("_call")?.unbind()),
        })
    }

    /// The operator's registry entry: a map step without parameters (the function's own
    /// closure holds its settings), named and versioned as the decorator says.
    pub(crate) fn descriptor(&self) -> OpDescriptor {
        let def = self.clone();
        let kind = if self.writes.is_empty() { OpKind::Map } else { OpKind::Annotate };
        let schema = schemars::json_schema!({ "type": "object", "properties": {} });
        OpDescriptor::new(
            &self.name,
            &self.version,
            kind,
            "Python function over Arrow record batches",
            schema,
            Arc::new(move |_params, _ctx: &BuildContext| Ok(Box::new(PyBatchOp(def.clone())) as Box<dyn Operator>) as Result<_, ParamError>),
        )
    }
}

struct PyBatchOp(PyOpDef);

impl Operator for PyBatchOp {
    fn columns(&self) -> Columns {
        Columns { reads: Vec::new(), writes: self.0.writes.clone() }
    }

    fn process(&self, batch: RecordBatch) -> Result<OpOutput, OpError> {
        let def = &self.0;
        let n = batch.num_rows();
        Python::attach(|py| {
            let arg = batch.to_pyarrow(py).map_err(|e| OpError(format!("passing the batch to Python: {e}")))?;
            let result = match def.call.call1(py, (arg,)) {
                Ok(r) => r,
                // The function's failure is the batch's: its records are quarantined with it.
                Err(e) => return Ok(OpOutput { verdicts: Some(Verdicts::fail_all(n, &describe(py, &e))), batch }),
            };
            let (kind, value): (String, Bound<'_, PyAny>) =
                result.bind(py).extract().map_err(|e| OpError(format!("{}: unexpected result from the wrapper: {e}", def.name)))?;
            let import = |v: &Bound<'_, PyAny>| -> Result<ArrayRef, OpError> {
                let data = ArrayData::from_pyarrow_bound(v).map_err(|e| OpError(format!("{}: the returned array: {e}", def.name)))?;
                Ok(arrow_array::make_array(data))
            };
            match kind.as_str() {
                "same" => Ok(OpOutput { batch, verdicts: None }),
                "mask" => {
                    let mask = import(&value)?;
                    let mask = mask.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| OpError(format!("{}: the keep mask is not boolean", def.name)))?;
                    check_len(&def.name, mask.len(), n)?;
                    let reason = format!("{}:mask", def.name);
                    let mut v = Verdicts::keep_all(n);
                    // A null in the mask keeps nothing it cannot vouch for.
                    (0..n).filter(|&i| !(mask.is_valid(i) && mask.value(i))).for_each(|i| v.drop_row(i, &reason));
                    Ok(OpOutput { batch, verdicts: Some(v) })
                }
                "reasons" => {
                    let reasons = import(&value)?;
                    let reasons = reasons.as_any().downcast_ref::<StringArray>().ok_or_else(|| OpError(format!("{}: drop reasons must be strings", def.name)))?;
                    check_len(&def.name, reasons.len(), n)?;
                    let mut v = Verdicts::keep_all(n);
                    for i in (0..n).filter(|&i| reasons.is_valid(i)) {
                        v.drop_row(i, &format!("{}:{}", def.name, reasons.value(i)));
                    }
                    Ok(OpOutput { batch, verdicts: Some(v) })
                }
                "columns" => {
                    let returned = RecordBatch::from_pyarrow_bound(&value).map_err(|e| OpError(format!("{}: the returned batch: {e}", def.name)))?;
                    Ok(OpOutput { batch: merge(&def.name, &def.writes, batch, &returned)?, verdicts: None })
                }
                other => Err(OpError(format!("{}: unexpected result kind `{other}` from the wrapper", def.name))),
            }
        })
    }

    fn content_key(&self) -> Option<String> {
        Some(self.0.content_key.clone())
    }
}

fn check_len(name: &str, got: usize, rows: usize) -> Result<(), OpError> {
    if got == rows {
        return Ok(());
    }
    Err(OpError(format!("{name} returned {got} values for a batch of {rows} records; return one per record")))
}

/// The input batch with the columns the function returned: existing ones replaced (same
/// type), declared ones added in declaration order; anything else is refused.
fn merge(name: &str, writes: &[(String, DataType)], input: RecordBatch, returned: &RecordBatch) -> Result<RecordBatch, OpError> {
    let rows = input.num_rows();
    check_len(name, returned.num_rows(), rows)?;
    let schema = input.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = input.columns().to_vec();
    for (field, column) in returned.schema().fields().iter().zip(returned.columns()) {
        let declared = writes.iter().find(|(n, _)| n == field.name());
        let expected = declared.map(|(_, t)| t.clone()).or_else(|| schema.field_with_name(field.name()).ok().map(|f| f.data_type().clone()));
        let Some(expected) = expected else {
            let known: Vec<&str> = writes.iter().map(|(n, _)| n.as_str()).collect();
            return Err(OpError(format!(
                "{name} returned column `{}`, which is neither an input column nor declared in writes ({}); declare it: @curate.map_batches(writes={{\"{}\": ...}})",
                field.name(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") },
                field.name()
            )));
        };
        if column.data_type() != &expected {
            return Err(OpError(format!("{name} returned column `{}` as {}, expected {expected}", field.name(), column.data_type())));
        }
        match fields.iter().position(|f| f.name() == field.name()) {
            Some(i) => {
                fields[i] = Field::new(field.name(), expected, declared.is_some() || fields[i].is_nullable());
                columns[i] = column.clone();
            }
            None => {
                fields.push(Field::new(field.name(), expected, true));
                columns.push(column.clone());
            }
        }
    }
    if let Some((missing, _)) = writes.iter().find(|(n, _)| !fields.iter().any(|f| f.name() == n)) {
        return Err(OpError(format!("{name} declared column `{missing}` in writes but did not return it")));
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    RecordBatch::try_new(schema, columns).map_err(|e| OpError(format!("{name}: {e}")))
}

/// An exception as one line a quarantine entry can carry: type, message and where it was
/// raised.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let at = e
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .and_then(|tb| tb.lines().rev().find(|l| l.trim_start().starts_with("File ")).map(|l| l.trim().to_string()));
    match at {
        Some(at) => format!("{e} ({at})"),
        None => e.to_string(),
    }
}
