#![allow(dead_code)]

pub mod killpoints;
pub mod overlay;
pub mod roots;
pub mod run;
pub mod s6;
pub mod timed;
pub mod tree;
