#![allow(dead_code)]

pub mod s6;
pub mod tree;
