//! Sequential: runs its layers in order; PyTorch names them "0", "1", … in state_dicts.

use autograd::Var;

use crate::error::Result;
use crate::module::Module;

/// x → layers\[0\] → layers\[1\] → … → output.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sequential({} layers)", self.layers.len())
    }
}

impl Sequential {
    /// An empty chain (its forward is the identity).
    pub fn new() -> Sequential {
        Sequential { layers: vec![] }
    }

    /// A chain of `layers`, applied in order.
    pub fn from_layers(layers: Vec<Box<dyn Module>>) -> Sequential {
        Sequential { layers }
    }

    /// Appends a layer (builder style): `Sequential::new().with(a).with(b)`.
    pub fn with(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a layer.
    pub fn push(&mut self, layer: impl Module + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layer at `index`, if any.
    pub fn get(&self, index: usize) -> Option<&dyn Module> {
        self.layers.get(index).map(|l| l.as_ref())
    }
}

impl Module for Sequential {
    /// The layers in order; a layer followed by a ReLU layer runs with it as one op
    /// ([`Module::forward_then_relu`]: the same values, one GPU launch fewer), and a nearest
    /// upsampling hands its input to the next layer, which may read the small image directly
    /// ([`Module::forward_nearest_upsampled`]). The layers keep their places, and so their names.
    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        let mut i = 0;
        while let Some(layer) = self.layers.get(i) {
            if let (Some(scale), Some(next)) = (layer.nearest_upsampling_scale(), self.layers.get(i + 1)) {
                h = next.forward_nearest_upsampled(&h, scale)?;
                i += 2;
            } else if self.layers.get(i + 1).is_some_and(|next| next.is_relu()) {
                h = layer.forward_then_relu(&h)?;
                i += 2;
            } else {
                h = layer.forward(&h)?;
                i += 1;
            }
        }
        Ok(h)
    }

    /// Folds within each layer, then each batch norm that follows a layer able to absorb it;
    /// the layers after a fold move up one place (and one name).
    fn fold_batch_norms(&mut self) -> Result<usize> {
        let mut folded = 0;
        for layer in &mut self.layers {
            folded += layer.fold_batch_norms()?;
        }
        let mut i = 0;
        while i + 1 < self.layers.len() {
            if let Some(affine) = self.layers[i + 1].eval_channel_affine()? {
                if let Some(absorbed) = self.layers[i].absorb_channel_affine(&affine)? {
                    self.layers[i] = absorbed;
                    self.layers.remove(i + 1);
                    folded += 1;
                }
            }
            i += 1;
        }
        Ok(folded)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, layer) in self.layers.iter().enumerate() {
            visit(&i.to_string(), layer.as_ref());
        }
    }
}
