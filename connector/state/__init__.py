"""What travels in requests and resource_meta: the signed codec, its keys, literals <-> values, the proto."""
