//! Examples live under examples/; see README.md.
