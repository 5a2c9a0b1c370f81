{
  description = "Slipway: a Rust monorepo that carries its own release engineering";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = import nixpkgs { inherit system; };
    in {
      # `nix develop`: the Rust toolchain plus every tool the test suite drives.
      devShells.${system}.default = pkgs.mkShell {
        packages = with pkgs; [
          rustup        # the toolchain, plus `rustup target add x86_64-unknown-linux-musl`
          git
          skopeo        # reads our OCI layouts and pushes to registries
          umoci         # unpacks our images into runc bundles
          runc          # runs them
          oci-image-tool
          docker-distribution # the registry the store tests push to
          openssl       # verifies signatures independently
          prometheus    # promtool, for alert rules
          python3       # securesystemslib, cyclonedx, kubernetes-validate, openfeature-flagd-core (pip)
          nodejs        # the @kubernetes-models validators (npm, under target/npm)
          jq
          postgresql_15 # the data stores' server (initdb, postgres) and psql
        ];
      };
    };
}
