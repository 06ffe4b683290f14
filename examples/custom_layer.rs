//! A layer defined outside the library: a residual MLP block y = x + W₂·relu(W₁·x + b₁) + b₂
//! with a learnable per-feature gate, implementing `nn::Module` (so it nests in `Sequential`,
//! lists its parameters by name and trains with the optimizers), with its gradient checked
//! against finite differences by `autograd::gradcheck`.
//! Run with `cargo run --release --example custom_layer`.

use autograd::gradcheck::{gradcheck, GradcheckOptions};
use autograd::Var;
use nn::{Init, Linear, Module, Sequential};
use tensor::{DType, Rng, Tensor};

/// x: [N, features] → [N, features]: x + gate ⊙ (W₂·relu(W₁·x + b₁) + b₂).
/// `gate` ([features]) starts at zero, so a freshly made block is the identity (as in
/// "ReZero" residual networks) and learns how much of its branch to add.
struct GatedResidual {
    inner: Linear, // [features] → [hidden]
    outer: Linear, // [hidden] → [features]
    gate: Var,     // [features]
}

impl GatedResidual {
    fn new(features: usize, hidden: usize, init: &mut Init) -> nn::Result<GatedResidual> {
        Ok(GatedResidual {
            inner: Linear::new(features, hidden, init)?,
            outer: Linear::new(hidden, features, init)?,
            gate: Var::parameter(Tensor::zeros(&[features], init.dtype)),
        })
    }
}

impl Module for GatedResidual {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let branch = self.outer.forward(&self.inner.forward(x)?.relu()?)?;
        // gate [features] broadcasts over the batch axis of branch [N, features].
        Ok(x.add(&branch.mul(&self.gate)?)?)
    }

    // Children and own parameters give the PyTorch-style names: inner.weight, …, gate.
    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("inner", &self.inner);
        visit("outer", &self.outer);
    }

    fn visit_parameters(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit("gate", &self.gate);
    }
}

fn main() -> nn::Result<()> {
    // 1. It is a Module like any other: nest it, list its parameters.
    let mut init = Init::new(0);
    let model = Sequential::new().with(GatedResidual::new(4, 8, &mut init)?).with(Linear::new(4, 2, &mut init)?);
    for (name, p) in model.named_parameters() {
        println!("{name:16} {:?}", p.shape());
    }
    let x = Var::constant(Tensor::rand_normal(&[3, 4], 0.0, 1.0, DType::F32, &mut Rng::new(1)));
    println!("forward: [3, 4] → {:?}", model.forward(&x)?.shape());

    // 2. Its gradient matches finite differences. gradcheck works in f64, so the block's
    //    parameters come in as gradcheck's inputs (the layer is rebuilt over them each call):
    //    inputs are x [3, 4], W₁ [8, 4], b₁ [8], W₂ [4, 8], b₂ [4], gate [4].
    let mut rng = Rng::new(2);
    let inputs: Vec<Tensor> = [&[3, 4][..], &[8, 4], &[8], &[4, 8], &[4], &[4]]
        .iter()
        .map(|shape| Tensor::rand_normal(shape, 0.0, 1.0, DType::F64, &mut rng))
        .collect();
    let block_on = |v: &[Var]| -> tensor::Result<Var> {
        let block = GatedResidual {
            inner: Linear::from_parameters(v[1].clone(), Some(v[2].clone())).expect("shapes"),
            outer: Linear::from_parameters(v[3].clone(), Some(v[4].clone())).expect("shapes"),
            gate: v[5].clone(),
        };
        block.forward(&v[0]).map_err(|e| tensor::TensorError::Invalid { op: "GatedResidual", msg: e.to_string() })
    };
    let report = gradcheck(block_on, &inputs, &GradcheckOptions::default())?;
    let errors: Vec<String> = report.max_rel_error.iter().map(|e| format!("{e:.1e}")).collect();
    println!("gradcheck passed: worst relative error per input [{}]", errors.join(", "));
    Ok(())
}
