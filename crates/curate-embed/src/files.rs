//! Reading a model directory: JSON configs, safetensors tensors as f32, and the digest of
//! every file a model reads (so cached outputs follow new weights).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde::de::DeserializeOwned;

use crate::error::ModelError;

/// The files of one model, read once; their digest identifies the model.
pub(crate) struct ModelDir {
    dir: PathBuf,
    hasher: blake3::Hasher,
}

impl ModelDir {
    pub(crate) fn open(dir: &Path) -> Result<Self, ModelError> {
        if !dir.is_dir() {
            let message = if dir.exists() { "is not a directory (expected a model directory)" } else { "no such model directory" };
            return Err(ModelError::invalid(dir, message));
        }
        Ok(ModelDir { dir: dir.to_path_buf(), hasher: blake3::Hasher::new() })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.dir.join(name).is_file()
    }

    /// The bytes of `name`, folded into the model's digest.
    pub(crate) fn read(&mut self, name: &str) -> Result<Vec<u8>, ModelError> {
        let path = self.path(name);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io { path, source })?;
        self.hasher.update(name.as_bytes());
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(&bytes);
        Ok(bytes)
    }

    pub(crate) fn json<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, ModelError> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes).map_err(|e| ModelError::invalid(self.path(name), e.to_string()))
    }

    /// Every tensor of a safetensors file, converted to f32.
    pub(crate) fn tensors(&mut self, name: &str) -> Result<Tensors, ModelError> {
        let bytes = self.read(name)?;
        let path = self.path(name);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::invalid(&path, e.to_string()))?;
        let mut map = BTreeMap::new();
        let mut integers = BTreeMap::new();
        for (tensor_name, view) in st.tensors() {
            let ints: Option<Vec<i64>> = match view.dtype() {
                Dtype::I64 => Some(view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect()),
                Dtype::I32 => Some(view.data().chunks_exact(4).map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect()),
                _ => None,
            };
            if let Some(ints) = ints {
                integers.insert(tensor_name, (view.shape().to_vec(), ints));
                continue;
            }
            let data = match view.dtype() {
                Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                Dtype::F16 => view.data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                Dtype::BF16 => view.data().chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
                other => return Err(ModelError::invalid(&path, format!("tensor `{tensor_name}` has dtype {other:?}; float32, float16, bfloat16 and integers are supported"))),
            };
            map.insert(tensor_name, (view.shape().to_vec(), data));
        }
        Ok(Tensors { path, map, integers })
    }

    /// Hex digest of every file read so far.
    pub(crate) fn digest(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// Named tensors of one safetensors file: floats as f32, integers as i64.
pub(crate) struct Tensors {
    path: PathBuf,
    map: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    integers: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
}

impl Tensors {
    /// Takes the tensor `name`, checking its shape.
    pub(crate) fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let (actual, data) = self.map.remove(name).ok_or_else(|| ModelError::invalid(&self.path, format!("no tensor `{name}`")))?;
        if actual != shape {
            return Err(ModelError::invalid(&self.path, format!("tensor `{name}` has shape {actual:?}, expected {shape:?}")));
        }
        Ok(data)
    }

    /// Takes the integer tensor `name`, checking its shape.
    pub(crate) fn take_integers(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>, ModelError> {
        let (actual, data) = self.integers.remove(name).ok_or_else(|| ModelError::invalid(&self.path, format!("no integer tensor `{name}`")))?;
        if actual != shape {
            return Err(ModelError::invalid(&self.path, format!("tensor `{name}` has shape {actual:?}, expected {shape:?}")));
        }
        Ok(data)
    }

    /// The first tensor name among `names` that the file holds.
    pub(crate) fn first_of<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names.iter().copied().find(|n| self.map.contains_key(*n))
    }

    /// Shape of `name`, if present.
    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        match self.map.get(name) {
            Some((s, _)) => Some(s),
            None => self.integers.get(name).map(|(s, _)| s.as_slice()),
        }
    }

    /// Names of all tensors, for error messages.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.map.keys().chain(self.integers.keys()).map(String::as_str).collect()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
