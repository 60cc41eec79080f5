#![allow(dead_code)]
pub mod s6;
