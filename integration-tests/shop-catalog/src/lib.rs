//! Holds no code: this crate only carries the black-box contract tests of shop-catalog in `tests/`
