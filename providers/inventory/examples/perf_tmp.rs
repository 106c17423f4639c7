use driftwatch_provider_inventory::{parse_export, Format};
use std::time::Instant;

fn main() {
    let n = 100_000;
    // AWS: security groups with rules, instances, buckets.
    let mut s = String::from("{\"fileVersion\":\"1.0\",\"configurationItems\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        match i % 3 {
            0 => s.push_str(&format!(r#"{{"configuration":{{"description":"d","groupName":"g{i}","ipPermissions":[{{"fromPort":443,"ipProtocol":"tcp","ipv6Ranges":[],"prefixListIds":[],"toPort":443,"userIdGroupPairs":[],"ipv4Ranges":[{{"cidrIp":"0.0.0.0/0"}}],"ipRanges":["0.0.0.0/0"]}}],"ownerId":"123456789012","groupId":"sg-{i}","ipPermissionsEgress":[{{"ipProtocol":"-1","ipv4Ranges":[{{"cidrIp":"0.0.0.0/0"}}],"ipRanges":["0.0.0.0/0"]}}],"tags":[{{"key":"Name","value":"n{i}"}}],"vpcId":"vpc-1"}},"supplementaryConfiguration":{{}},"tags":{{"Name":"n{i}"}},"configurationItemCaptureTime":"2024-05-01T10:15:02.481Z","awsAccountId":"123456789012","configurationItemStatus":"OK","resourceType":"AWS::EC2::SecurityGroup","resourceId":"sg-{i}","ARN":"arn","awsRegion":"eu-west-1"}}"#)),
            1 => s.push_str(&format!(r#"{{"configuration":{{"imageId":"ami-1","instanceId":"i-{i}","instanceType":"t3.micro","keyName":"k","monitoring":{{"state":"disabled"}},"placement":{{"availabilityZone":"eu-west-1b","tenancy":"default"}},"privateIpAddress":"10.0.0.1","state":{{"code":16,"name":"running"}},"subnetId":"subnet-1","securityGroups":[{{"groupId":"sg-1"}}],"tags":[{{"key":"Name","value":"web"}}]}},"supplementaryConfiguration":{{}},"tags":{{"Name":"web"}},"configurationItemCaptureTime":"2024-05-01T10:15:02.481Z","awsAccountId":"123456789012","configurationItemStatus":"OK","resourceType":"AWS::EC2::Instance","resourceId":"i-{i}","awsRegion":"eu-west-1"}}"#)),
            _ => s.push_str(&format!(r#"{{"configuration":"{{\"name\":\"b{i}\"}}","supplementaryConfiguration":{{"AccessControlList":"{{\"grantList\":[{{\"grantee\":\"AllUsers\",\"permission\":\"Read\"}}]}}","BucketVersioningConfiguration":{{"status":"Enabled"}},"PublicAccessBlockConfiguration":{{"blockPublicAcls":true,"ignorePublicAcls":true,"blockPublicPolicy":true,"restrictPublicBuckets":true}}}},"tags":{{}},"configurationItemCaptureTime":"2024-05-01T10:15:02.481Z","awsAccountId":"123456789012","configurationItemStatus":"OK","resourceType":"AWS::S3::Bucket","resourceId":"b{i}","resourceName":"b{i}","awsRegion":"eu-west-1"}}"#)),
        }
    }
    s.push_str("]}");
    let t = Instant::now();
    let v: serde_json::Value = serde_json::from_slice(s.as_bytes()).unwrap();
    println!("aws from_slice only: {:?}", t.elapsed());
    let t = Instant::now();
    drop(v);
    println!("aws drop only: {:?}", t.elapsed());
    let t = Instant::now();
    let p = parse_export(Format::AwsConfig, "aws", s.as_bytes()).unwrap();
    println!(
        "aws: {} MB -> {} resources in {:?}",
        s.len() / 1_000_000,
        p.resources.len(),
        t.elapsed()
    );

    let mut g = String::new();
    for i in 0..n {
        g.push_str(&format!(r#"{{"name":"//compute.googleapis.com/projects/p/global/firewalls/f{i}","asset_type":"compute.googleapis.com/Firewall","resource":{{"version":"v1","discovery_name":"Firewall","parent":"//cloudresourcemanager.googleapis.com/projects/1","data":{{"allowed":[{{"IPProtocol":"tcp","ports":["22","80-90"]}}],"direction":"INGRESS","disabled":false,"name":"f{i}","network":"https://www.googleapis.com/compute/v1/projects/p/global/networks/default","priority":1000,"sourceRanges":["0.0.0.0/0"],"targetTags":["web"]}},"location":"global"}},"update_time":"2024-05-01T10:00:00Z"}}"#));
        g.push('\n');
    }
    let t = Instant::now();
    let p = parse_export(Format::GcpAssetInventory, "gcp", g.as_bytes()).unwrap();
    println!(
        "gcp: {} MB -> {} resources in {:?}",
        g.len() / 1_000_000,
        p.resources.len(),
        t.elapsed()
    );

    let mut a = String::from("{\"data\":[");
    for i in 0..n {
        if i > 0 {
            a.push(',');
        }
        a.push_str(&format!(r#"{{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n{i}","name":"n{i}","type":"microsoft.network/networksecuritygroups","location":"westeurope","resourceGroup":"rg","subscriptionId":"s","tags":{{"env":"prod"}},"properties":{{"securityRules":[{{"name":"r","properties":{{"protocol":"Tcp","sourcePortRange":"*","destinationPortRange":"22","sourceAddressPrefix":"Internet","destinationAddressPrefix":"*","access":"Allow","priority":100,"direction":"Inbound"}}}}],"defaultSecurityRules":[{{"name":"DenyAllInBound","properties":{{"protocol":"*","sourcePortRange":"*","destinationPortRange":"*","sourceAddressPrefix":"*","destinationAddressPrefix":"*","access":"Deny","priority":65500,"direction":"Inbound"}}}}]}}}}"#));
    }
    a.push_str("]}");
    let t = Instant::now();
    let p = parse_export(Format::AzureResourceGraph, "az", a.as_bytes()).unwrap();
    println!(
        "azure: {} MB -> {} resources in {:?}",
        a.len() / 1_000_000,
        p.resources.len(),
        t.elapsed()
    );
}
