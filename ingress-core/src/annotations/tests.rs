//! Table-driven tests of the annotation engine.
