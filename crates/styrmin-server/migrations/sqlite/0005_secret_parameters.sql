-- Secret parameter values of a deployment (SPEC §8), each sealed with the server key:
-- {"name": "base64(nonce ‖ ciphertext ‖ tag)"}. Never returned by the API except to the
-- agent of the deployment's cluster.
ALTER TABLE deployments ADD COLUMN secret_parameters TEXT NOT NULL DEFAULT '{}';

-- Set when an environment is deleted with its deployments (cascade): it goes once the
-- last of their delete runs completes.
ALTER TABLE environments ADD COLUMN deleting_at BIGINT;
