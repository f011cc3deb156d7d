//! The rebalancer loop: keeps each channel inside its band by splicing to and from the treasury.
