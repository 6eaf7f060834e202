//! Average pooling on the CPU (k×k windows, stride k).

use crate::backend::PoolShape;

pub fn pool_forward(s: PoolShape, x: &[f32], y: &mut [f32]) {
    let (k, ho, wo) = (s.kernel, s.out_height(), s.out_width());
    let scale = 1.0 / (k * k) as f32;
    for plane in 0..s.batch * s.channels {
        let xp = &x[plane * s.height * s.width..][..s.height * s.width];
        for i in 0..ho {
            for j in 0..wo {
                let mut sum = 0.0;
                for di in 0..k {
                    sum += xp[(i * k + di) * s.width + j * k..][..k]
                        .iter()
                        .sum::<f32>();
                }
                y[(plane * ho + i) * wo + j] = sum * scale;
            }
        }
    }
}

pub fn pool_backward(s: PoolShape, dy: &[f32], dx: &mut [f32]) {
    let (k, ho, wo) = (s.kernel, s.out_height(), s.out_width());
    let scale = 1.0 / (k * k) as f32;
    dx[..s.batch * s.channels * s.height * s.width].fill(0.0);
    for plane in 0..s.batch * s.channels {
        let dxp = &mut dx[plane * s.height * s.width..][..s.height * s.width];
        for i in 0..ho {
            for j in 0..wo {
                let g = dy[(plane * ho + i) * wo + j] * scale;
                for di in 0..k {
                    dxp[(i * k + di) * s.width + j * k..][..k]
                        .iter_mut()
                        .for_each(|d| *d = g);
                }
            }
        }
    }
}
