//! # autograd
//!
//! Tier: core. Every op here runs unchanged on the reference, CPU and GPU devices.
//!
//! Reverse-mode automatic differentiation over the `tensor` crate's ops.
//!
//! How data flows: wrap tensors in [`Var`]s (parameters with `Var::parameter`, data with
//! `Var::constant`). Every op in [`ops`] computes its value with a `tensor` op and, when
//! gradients are on, records a closure that maps the output's gradient to its inputs'
//! (forward and backward sit side by side in one function). `loss.backward()` sorts the
//! recorded graph topologically (iteratively), walks it in reverse, accumulates gradients
//! into the leaves' `.grad()`, and frees the graph. [`no_grad`] turns recording off.
//! [`gradcheck`](gradcheck::gradcheck) verifies any backward against finite differences in f64.
//!
//! ```
//! use autograd::Var;
//! use tensor::Tensor;
//! let w = Var::parameter(Tensor::from_vec(vec![2.0f64, -1.0], &[2]).unwrap());
//! let x = Var::constant(Tensor::from_vec(vec![3.0f64, 4.0], &[2]).unwrap());
//! let loss = w.mul(&x).unwrap().sum_all().unwrap(); // 2·3 − 1·4 = 2
//! loss.backward().unwrap();
//! assert_eq!(w.grad().unwrap().to_vec_f64().unwrap(), vec![3.0, 4.0]); // ∂loss/∂w = x
//! ```

#![warn(missing_docs)]

pub mod gradcheck;
pub mod graph;
pub mod ops;
mod var;

pub use graph::{is_grad_enabled, no_grad, NoGradGuard};
pub use var::Var;
