//! Placeholder until the route benchmark lands.
fn main() {}
