#![allow(dead_code)]
pub mod configs;
pub mod schema;
