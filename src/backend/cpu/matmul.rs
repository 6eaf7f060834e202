//! Strided matrix views and one product, on top of the `gemm` crate (multithreaded for large
//! products). Transposes are free: a view is a pointer plus row and column strides.

/// A read-only `rows × cols` matrix view with arbitrary strides.
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// `data` holds a row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        Mat {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of the row-major `rows × cols` matrix in `data` (a `cols × rows` view).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix view out of bounds");
        Mat {
            data,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols,
        }
    }
}

/// `c = a·b` (or `c += a·b` with `accumulate`); `c` is row-major `a.rows × b.cols`.
/// Large products are split across threads.
pub fn matmul(a: Mat, b: Mat, c: &mut [f32], accumulate: bool) {
    let parallel = a.rows * b.cols * a.cols >= 1 << 18;
    product(a, b, c, accumulate, parallel);
}

/// [`matmul`] on the calling thread only: for callers that already run one task per thread.
pub fn matmul_serial(a: Mat, b: Mat, c: &mut [f32], accumulate: bool) {
    product(a, b, c, accumulate, false);
}

fn product(a: Mat, b: Mat, c: &mut [f32], accumulate: bool, parallel: bool) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(c.len() >= m * n, "output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above bound every index gemm touches: a is m×k, b is k×n and c is
    // m×n under the given strides, all inside their slices; c does not alias a or b (&mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
