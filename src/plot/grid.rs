//! TEMPORARY grid (the plot helper's version replaces this at merge).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid2d {
    pub n: usize,
    pub range: f32,
}
impl Grid2d {
    pub fn points(&self) -> Vec<f32> {
        let h = 2.0 * self.range / self.n as f32;
        let mut p = Vec::with_capacity(2 * self.n * self.n);
        for r in 0..self.n {
            for c in 0..self.n {
                p.push(-self.range + (c as f32 + 0.5) * h);
                p.push(self.range - (r as f32 + 0.5) * h);
            }
        }
        p
    }
    pub fn cell_of(&self, x: f32, y: f32) -> Option<usize> {
        let h = 2.0 * self.range / self.n as f32;
        let c = ((x + self.range) / h).floor();
        let r = ((self.range - y) / h).floor();
        if c < 0.0 || r < 0.0 || c >= self.n as f32 || r >= self.n as f32 {
            return None;
        }
        Some(r as usize * self.n + c as usize)
    }
}
