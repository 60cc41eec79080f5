fn main() {
    println!("reconcile: not built yet");
}
