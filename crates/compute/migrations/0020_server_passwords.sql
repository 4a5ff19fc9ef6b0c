-- The encrypted admin password a guest posts to the metadata service (Nova keeps it in the
-- instance's system metadata); read and cleared through os-server-password.
CREATE TABLE compute_server_passwords (
    server_id TEXT PRIMARY KEY,
    password TEXT NOT NULL
);
