"""Channel adapters: one stateless package per bank protocol, translating domain requests to the
bank's wire format and the bank's answers back to one outcome vocabulary."""
