//! The compact form's values, decoded with memory and time bounded by their
//! bytes whatever their length fields declare.
//!
//! postcard reads a sequence's or a map's declared length from the input and
//! hands it to serde as the collection's size hint, and serde presizes the
//! collection from it (`size_hint::cautious`: up to 1 MiB per collection).
//! postcard bounds a sequence's hint by the bytes left, but not a map's, so
//! ten bytes declaring `u64::MAX` entries made a `HashMap<String, String>`
//! allocate 1.6 MB before the first entry failed to read. And a declared
//! length is a loop count: elements that take no bytes (`()`, unit structs,
//! a struct whose fields are all skipped) are read until that count is
//! reached, however large it is.
//!
//! So the deserializer is wrapped, and the wrapper keeps a budget of
//! elements: a value of `n` bytes holds at most `n` elements in all its
//! sequences and maps together, since every element takes at least one
//! byte (an element that is a collection takes its length, then its own
//! elements). Each element read is charged to the budget, and reading one
//! more than the budget holds is an error. A collection is presized only
//! when the elements it declares fit in what is left of the budget (an
//! entry of a map counting twice, for its key and value, to decide): those
//! are reserved from the budget at once, so all the presized collections
//! of a value together hold no more elements than the value has bytes. A
//! collection that declares more gets no size hint and grows as its
//! elements arrive, which hostile input cannot make outgrow the input.
//! Elements of zero-sized types are counted apart (see
//! [`zero_sized_allowance`]). Tuples, structs and enum variants have the
//! length of their type, not of the input: their fields are not counted.
//!
//! Clamping each hint to the bytes left, or checking each declared length
//! against them, would not do as much: postcard's deserializer does not
//! say how many bytes are left, each of a value's nested collections could
//! still presize for all of its bytes, and neither bounds the elements that
//! take no bytes.
//!
//! Strings and byte strings need nothing of this: postcard checks their
//! length against the bytes left before it reads them.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Decodes `bytes` as a `T`, all of them.
pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let budget = Budget {
        left: Cell::new(bytes.len()),
        zero_sized_left: Cell::new(zero_sized_allowance(bytes.len())),
        exceeded: Cell::new(false),
    };
    let mut postcard = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(Bounded {
        de: &mut postcard,
        budget: &budget,
    });
    match value {
        Ok(value) => match postcard.finalize() {
            Ok([]) => Ok(value),
            Ok(rest) => Err(format!("{} bytes left over after the value", rest.len())),
            Err(e) => Err(e.to_string()),
        },
        // postcard drops the message of a custom error: say it here.
        Err(_) if budget.exceeded.get() => Err(format!(
            "the value's collections declare more elements than its {} bytes can hold",
            bytes.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

// ===== Budget =====

/// How many elements of a zero-sized type (`()`, a unit struct) a value of
/// `n` bytes may hold: 64 per byte and 64 more. They take no bytes on the
/// wire and no memory, only the time to read them (about a nanosecond
/// each), so this bounds time, and lets any `Vec<()>` whose length takes
/// one byte (up to 127 elements) through.
fn zero_sized_allowance(n: usize) -> usize {
    n.saturating_add(1).saturating_mul(64)
}

/// The elements a value may still hold, shared by every wrapper of one
/// decode (a decode runs on one thread: a `Cell` will do).
struct Budget {
    left: Cell<usize>,
    /// Elements of zero-sized types, which are counted apart: they cost no
    /// memory, and a value holds more of them than it has bytes.
    zero_sized_left: Cell<usize>,
    /// Set when an element was refused, to say why the decode failed.
    exceeded: Cell<bool>,
}

impl Budget {
    /// Takes `n` elements from the budget if they are there.
    fn reserve(&self, n: usize) -> bool {
        match self.left.get().checked_sub(n) {
            Some(rest) => {
                self.left.set(rest);
                true
            }
            None => false,
        }
    }

    /// Pays for one element of a zero-sized type.
    fn charge_zero_sized<E: de::Error>(&self) -> Result<(), E> {
        match self.zero_sized_left.get().checked_sub(1) {
            Some(rest) => {
                self.zero_sized_left.set(rest);
                Ok(())
            }
            None => Err(self.refuse()),
        }
    }

    fn refuse<E: de::Error>(&self) -> E {
        self.exceeded.set(true);
        E::custom("a collection declares more elements than the value can hold")
    }
}

/// What a collection has taken from the budget: the elements it presized
/// for and has not read yet. What it did not read goes back when it is
/// done.
struct Reservation<'b> {
    budget: &'b Budget,
    /// `None` when the collection was not presized.
    unread: Option<Cell<usize>>,
}

impl<'b> Reservation<'b> {
    /// Reserves `declared` elements (`weight` budget elements each, to
    /// decide) if they fit in the budget.
    fn new(budget: &'b Budget, declared: Option<usize>, weight: usize) -> Reservation<'b> {
        let fits = |n: usize| {
            n.checked_mul(weight)
                .is_some_and(|w| w <= budget.left.get())
        };
        let unread = match declared {
            Some(n) if fits(n) && budget.reserve(n) => Some(Cell::new(n)),
            _ => None,
        };
        Reservation { budget, unread }
    }

    /// The size hint serde presizes from: the elements reserved and unread.
    fn size_hint(&self) -> Option<usize> {
        self.unread.as_ref().map(Cell::get)
    }

    /// Pays for one element: from the reservation while it lasts, then from
    /// the budget.
    fn charge<E: de::Error>(&self) -> Result<(), E> {
        if let Some(unread) = &self.unread {
            if unread.get() > 0 {
                unread.set(unread.get() - 1);
                return Ok(());
            }
        }
        if self.budget.reserve(1) {
            Ok(())
        } else {
            Err(self.budget.refuse())
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(unread) = &self.unread {
            let left = &self.budget.left;
            left.set(left.get() + unread.get());
        }
    }
}

// ===== Bounded: the deserializer =====

/// A deserializer whose visitors see bounded sequences and maps, all the
/// way down.
struct Bounded<'b, D> {
    de: D,
    budget: &'b Budget,
}

impl<'b, D> Bounded<'b, D> {
    /// `visitor`, for a shape whose length is the type's, not the input's.
    fn fixed<V>(&self, visitor: V) -> Wrap<'b, V> {
        Wrap {
            visitor,
            budget: self.budget,
            declared: false,
        }
    }

    /// `visitor`, for a shape whose length is read from the input.
    fn declared<V>(&self, visitor: V) -> Wrap<'b, V> {
        Wrap {
            visitor,
            budget: self.budget,
            declared: true,
        }
    }
}

macro_rules! forward_fixed {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.fixed(visitor);
            self.de.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Bounded<'_, D> {
    type Error = D::Error;

    forward_fixed! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.declared(visitor);
        self.de.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.declared(visitor);
        self.de.deserialize_map(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.fixed(visitor);
        self.de.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.fixed(visitor);
        self.de.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.fixed(visitor);
        self.de.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.fixed(visitor);
        self.de.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.fixed(visitor);
        self.de.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.fixed(visitor);
        self.de.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

// ===== Wrap: the visitor =====

/// A visitor that hands the inner visitor bounded accesses.
struct Wrap<'b, V> {
    visitor: V,
    budget: &'b Budget,
    /// Whether a sequence or map visited has an input-declared length, whose
    /// elements are charged to the budget (a tuple's or a struct's length
    /// is its type's: it cannot be hostile).
    declared: bool,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Bounded {
            de,
            budget: self.budget,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Bounded {
            de,
            budget: self.budget,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let reservation = self
            .declared
            .then(|| Reservation::new(self.budget, seq.size_hint(), 1));
        self.visitor.visit_seq(Seq {
            seq,
            budget: self.budget,
            reservation,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let reservation = self
            .declared
            .then(|| Reservation::new(self.budget, map.size_hint(), 2));
        self.visitor.visit_map(Map {
            map,
            budget: self.budget,
            reservation,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_enum(Enum {
            data,
            budget: self.budget,
        })
    }
}

// ===== Seed: one element =====

/// A seed that deserializes from a bounded deserializer, charging its
/// element to `reservation` first when there is one.
struct Seed<'r, 'b, S> {
    seed: S,
    budget: &'b Budget,
    reservation: Option<&'r Reservation<'b>>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, '_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        // Called only for an element that is there: charged before it is read.
        if let Some(reservation) = self.reservation {
            if std::mem::size_of::<S::Value>() == 0 {
                self.budget.charge_zero_sized()?;
            } else {
                reservation.charge()?;
            }
        }
        self.seed.deserialize(Bounded {
            de,
            budget: self.budget,
        })
    }
}

// ===== Seq, Map, Enum: the accesses =====

struct Seq<'b, A> {
    seq: A,
    budget: &'b Budget,
    /// `None` for a tuple or a struct, whose elements are not charged.
    reservation: Option<Reservation<'b>>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.seq.next_element_seed(Seed {
            seed,
            budget: self.budget,
            reservation: self.reservation.as_ref(),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        match &self.reservation {
            Some(reservation) => reservation.size_hint(),
            None => self.seq.size_hint(),
        }
    }
}

struct Map<'b, A> {
    map: A,
    budget: &'b Budget,
    reservation: Option<Reservation<'b>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // An entry is charged once, with its key.
        self.map.next_key_seed(Seed {
            seed,
            budget: self.budget,
            reservation: self.reservation.as_ref(),
        })
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(Seed {
            seed,
            budget: self.budget,
            reservation: None,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        match &self.reservation {
            Some(reservation) => reservation.size_hint(),
            None => self.map.size_hint(),
        }
    }
}

struct Enum<'b, A> {
    data: A,
    budget: &'b Budget,
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'b, A> {
    type Error = A::Error;
    type Variant = Variant<'b, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let (value, variant) = self.data.variant_seed(Seed {
            seed,
            budget,
            reservation: None,
        })?;
        Ok((value, Variant { variant, budget }))
    }
}

struct Variant<'b, A> {
    variant: A,
    budget: &'b Budget,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.variant.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.variant.newtype_variant_seed(Seed {
            seed,
            budget: self.budget,
            reservation: None,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = Wrap {
            visitor,
            budget: self.budget,
            declared: false,
        };
        self.variant.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Wrap {
            visitor,
            budget: self.budget,
            declared: false,
        };
        self.variant.struct_variant(fields, visitor)
    }
}
