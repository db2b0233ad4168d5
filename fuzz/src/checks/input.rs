//! Reading structured values out of fuzz input bytes.

/// First bytes below this select a structured mode; anything else is raw text.
pub const MODE_LIMIT: u8 = 8;

/// Splits `data` into its mode (when the first byte selects one) and the remaining bytes.
pub fn mode(data: &[u8]) -> (Option<u8>, &[u8]) {
    match data.split_first() {
        Some((&m, rest)) if m < MODE_LIMIT => (Some(m), rest),
        _ => (None, data),
    }
}

/// A cursor over fuzz bytes; reads past the end give zeros, so every input is usable.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number below `n` (which must be positive).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }

    /// A number that is often one of the edges near `around` (and near 0 and `u64::MAX`),
    /// where off-by-one and overflow bugs live.
    pub fn edgy_u64(&mut self, around: u64) -> u64 {
        match self.byte() % 10 {
            0 => 0,
            1 => 1,
            2 => around.saturating_sub(1),
            3 => around,
            4 => around.saturating_add(1),
            5 => u64::MAX,
            6 => u64::MAX - 1,
            7 => u64::from(self.byte()),
            _ => self.u64(),
        }
    }

    pub fn pick<'p, T: ?Sized>(&mut self, pool: &[&'p T]) -> &'p T {
        pool[self.below(pool.len())]
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Text of up to `max` characters drawn from `alphabet`, one byte per character.
    pub fn text(&mut self, alphabet: &[u8], max: usize) -> String {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}
