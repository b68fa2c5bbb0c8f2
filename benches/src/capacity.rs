//! DynamoDB on-demand request units for recorded requests, from the request and
//! response bodies the SDK really exchanged with the emulator (the emulator's
//! own `ConsumedCapacity` is a constant, so it is not used).
//!
//! Rules (AWS "read/write capacity mode" docs): a write costs 1 WRU per 1 KB of
//! item (rounded up), twice in a transaction; a strongly consistent read 1 RRU
//! per 4 KB (Query: of all items read, summed), an eventually consistent read
//! half, a transactional read twice. Item size: attribute names plus values
//! (strings in UTF-8 bytes, numbers ~1 byte per 2 digits + 1, lists/maps 3
//! bytes + 1 per element). Where a body does not show the item size (an
//! UpdateItem or DeleteItem without returned attributes) one unit is counted:
//! the project's items are well under 1 KB except leads with many touchpoints.
//! Index writes: an item written with `gsi1pk` (ALL projection) adds the same
//! units again, one with `gsi2pk` (KEYS_ONLY) 1 WRU; an update that sets one of
//! them adds 1 WRU per index.

use serde_json::Value;

use leads_aws::request_counter::RequestRecord;

/// Request units of some DynamoDB requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

impl std::ops::AddAssign for Units {
    fn add_assign(&mut self, o: Units) {
        self.read += o.read;
        self.write += o.write;
    }
}

/// Units of the DynamoDB requests among `records` (others count zero).
pub fn units(records: &[RequestRecord]) -> Units {
    let mut total = Units::default();
    for r in records {
        total += units_of(r);
    }
    total
}

pub fn units_of(record: &RequestRecord) -> Units {
    let Some(op) = record.operation.strip_prefix("DynamoDB.") else {
        return Units::default();
    };
    let request: Value = serde_json::from_slice(&record.request_body).unwrap_or(Value::Null);
    let response: Value = serde_json::from_slice(&record.response_body).unwrap_or(Value::Null);
    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
    let read_factor = if consistent { 1.0 } else { 0.5 };
    match op {
        "GetItem" => Units {
            read: read_units(item_size(&response["Item"])) * read_factor,
            write: 0.0,
        },
        "Query" | "Scan" => {
            let items = response["Items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let mut bytes: usize = items.iter().map(item_size).sum();
            // Items read but filtered out cost too.
            let count = response["Count"].as_u64().unwrap_or(items.len() as u64);
            let scanned = response["ScannedCount"].as_u64().unwrap_or(count);
            if count > 0 && scanned > count {
                bytes = bytes * scanned as usize / count as usize;
            }
            Units {
                read: read_units(bytes) * read_factor,
                write: 0.0,
            }
        }
        "BatchGetItem" => {
            let mut read = 0.0;
            if let Some(tables) = response["Responses"].as_object() {
                for items in tables.values() {
                    for item in items.as_array().into_iter().flatten() {
                        read += read_units(item_size(item)) * 0.5;
                    }
                }
            }
            Units { read, write: 0.0 }
        }
        "PutItem" => Units {
            read: 0.0,
            write: put_units(&request["Item"]),
        },
        "UpdateItem" => Units {
            read: 0.0,
            write: update_units(&request, &response["Attributes"]),
        },
        "DeleteItem" => Units {
            read: 0.0,
            write: write_units(item_size(&response["Attributes"])),
        },
        "BatchWriteItem" => {
            let mut write = 0.0;
            if let Some(tables) = request["RequestItems"].as_object() {
                for requests in tables.values() {
                    for r in requests.as_array().into_iter().flatten() {
                        write += if r.get("PutRequest").is_some() {
                            put_units(&r["PutRequest"]["Item"])
                        } else {
                            1.0
                        };
                    }
                }
            }
            Units { read: 0.0, write }
        }
        "TransactWriteItems" => {
            let mut write = 0.0;
            for item in request["TransactItems"].as_array().into_iter().flatten() {
                write += 2.0
                    * if item.get("Put").is_some() {
                        put_units(&item["Put"]["Item"])
                    } else if item.get("Update").is_some() {
                        update_units(&item["Update"], &Value::Null)
                    } else {
                        1.0 // Delete, ConditionCheck
                    };
            }
            Units { read: 0.0, write }
        }
        "TransactGetItems" => {
            let mut read = 0.0;
            for r in response["Responses"].as_array().into_iter().flatten() {
                read += 2.0 * read_units(item_size(&r["Item"]));
            }
            Units { read, write: 0.0 }
        }
        _ => Units::default(),
    }
}

fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// A put's units including index writes.
fn put_units(item: &Value) -> f64 {
    let base = write_units(item_size(item));
    let mut total = base;
    if item.get("gsi1pk").is_some() {
        total += base;
    }
    if item.get("gsi2pk").is_some() {
        total += 1.0;
    }
    total
}

fn update_units(request: &Value, returned: &Value) -> f64 {
    let base = write_units(item_size(returned));
    let expression = request["UpdateExpression"].as_str().unwrap_or_default();
    let names = request["ExpressionAttributeNames"].to_string();
    let sets_index = |attr: &str| expression.contains(attr) || names.contains(attr);
    base + f64::from(u8::from(sets_index("gsi1pk"))) + f64::from(u8::from(sets_index("gsi2pk")))
}

/// An item's size in DynamoDB's accounting, from its wire JSON (`{"name": {"S": ..}}`).
pub fn item_size(item: &Value) -> usize {
    match item.as_object() {
        Some(attributes) => attributes
            .iter()
            .map(|(name, value)| name.len() + value_size(value))
            .sum(),
        None => 0,
    }
}

fn value_size(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => v.as_str().map_or(0, str::len),
        "N" => number_size(v.as_str().unwrap_or("0")),
        "B" => v.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => v.as_array().map_or(0, |a| {
            a.iter().map(|s| s.as_str().map_or(0, str::len)).sum()
        }),
        "NS" => v.as_array().map_or(0, |a| {
            a.iter()
                .map(|s| number_size(s.as_str().unwrap_or("0")))
                .sum()
        }),
        "L" => {
            3 + v
                .as_array()
                .map_or(0, |a| a.iter().map(|x| 1 + value_size(x)).sum())
        }
        "M" => {
            3 + v.as_object().map_or(0, |m| {
                m.iter()
                    .map(|(name, x)| 1 + name.len() + value_size(x))
                    .sum()
            })
        }
        _ => 0,
    }
}

fn number_size(text: &str) -> usize {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_accounting_rules() {
        let item =
            serde_json::json!({"pk": {"S": "abc"}, "n": {"N": "1234"}, "ok": {"BOOL": true}});
        assert_eq!(item_size(&item), (2 + 3) + (1 + 3) + (2 + 1));
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(read_units(0), 1.0);
    }
}
