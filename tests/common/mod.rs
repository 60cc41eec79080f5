#![allow(dead_code)]

pub mod killpoints;
pub mod tree;
