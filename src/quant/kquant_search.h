// Scale searches used by the K-quant quantizers. Each fits one small group of values (16 or 32) to an integer
// grid and returns the group's scale; the algorithms follow ggml's reference quantizer (weighted least squares
// over a sweep of candidate scales), so files we write have the error llama.cpp's files have.
#pragma once

#include <cstdint>

namespace rf::quant::kq {

// Symmetric grid x ~ scale * (L - nmax), L in [0, 2*nmax - 1]. Starts from the grid that maps the extreme
// value to -nmax, then tries 18 nearby grids and keeps the one with the least x^2-weighted squared error,
// each with its least-squares scale. A group whose magnitude is below 1e-15 gives scale 0 and L = 0.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L);

// Symmetric grid as above (x^2-weighted), refined by coordinate descent: each code is moved to the value
// the others' least-squares scale suggests while that lowers the error (at most 5 sweeps).
float fit_symmetric_refined(int n, int nmax, const float* x, int8_t* L);

// Affine grid x ~ scale * L - neg_min, L in [0, nmax], min <= 0 (*neg_min >= 0). Tries nstep + 1 grids
// whose step count runs from nmax + rmin in steps of rdelta, and for each solves the weighted least squares
// for scale and min; keeps the best by weighted squared (or absolute, use_abs) error.
float fit_affine(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* neg_min, float rmin,
                 float rdelta, int nstep, bool use_abs);

}  // namespace rf::quant::kq
