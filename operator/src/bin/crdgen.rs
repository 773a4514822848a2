//! Prints the LiveKitConfig CRD as YAML: `cargo run -p livekit-operator --bin crdgen > crds/livekitconfig.yaml`.

fn main() {
    print!("{}", livekit_operator::crd::crd_yaml());
}
