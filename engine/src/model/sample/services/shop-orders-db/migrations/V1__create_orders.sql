-- The sample store's one migration.
CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL);
