-- The orders shop-orders takes, one row each; ids in order of creation.
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer text NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    price_cents bigint NOT NULL,
    discount_cents bigint NOT NULL,
    total_cents bigint NOT NULL,
    weight_grams bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
