//! Holds no code: this crate only carries the black-box contract tests of shop-shipping in `tests/`
