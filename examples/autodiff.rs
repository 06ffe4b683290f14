//! The README's "autodiff in ten lines": a tiny graph, one backward pass, a gradient read back.
//! Run with `cargo run --release --example autodiff` (`-- --device reference`: every op as its
//! plain definition, to step through in a debugger).

use autograd::Var;
use tensor::{DType, Device, DevicePreference, Rng, Tensor};

fn main() -> Result<(), tensor::TensorError> {
    let device = Device::from_preference(DevicePreference::from_args()?)?;
    let mut rng = Rng::new(0);
    let w = Var::parameter(Tensor::rand_normal(&[3, 2], 0.0, 1.0, DType::F32, &mut rng).to_device(&device)?);
    let x = Var::constant(Tensor::rand_normal(&[4, 3], 0.0, 1.0, DType::F32, &mut rng).to_device(&device)?);
    let loss = x.matmul(&w)?.relu()?.square()?.mean_all()?; // mean(relu(x·w)²)
    loss.backward()?; // walks the graph in reverse
    println!("loss = {:.4}", loss.value().item()?);
    if let Some(g) = w.grad() {
        println!("dL/dw = {:?}", g.to_vec_f32()?); // [3, 2] gradient
    }
    Ok(())
}
