#![allow(dead_code)]
pub mod configs;
pub mod fake_api;
pub mod schema;
