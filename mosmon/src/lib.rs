//! mosmon, the cluster monitor: a bar per node, as openMosix's mosmon drew with ncurses,
//! drawn here with ratatui. [`model`] is what is shown and what the keys do, [`view`]
//! draws it, [`source`] brings the numbers (omd's control socket, or a simulation).

pub mod model;
pub mod source;
pub mod view;
