//! ue8-quant
